package main

import (
	"log/slog"
	"runtime/debug"
)

// goSafe runs f in a goroutine that recovers and logs a panic instead of
// taking PID 1, and with it the kernel, down. Every goroutine init starts
// goes through here.
func goSafe(log *slog.Logger, name string, f func()) {
	go func() {
		defer recoverLog(log, name)
		f()
	}()
}

// recoverLog logs a recovered panic; use it deferred.
func recoverLog(log *slog.Logger, name string) {
	if v := recover(); v != nil {
		log.Error("recovered a panic", "in", name, "panic", v, "stack", string(debug.Stack()))
	}
}
