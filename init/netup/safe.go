package netup

import (
	"log/slog"
	"runtime/debug"
)

// goSafe runs f in a new goroutine that recovers a panic and logs it, with
// the stack. PID 1 must never die, so every goroutine netup starts goes
// through here.
func goSafe(log *slog.Logger, name string, f func()) {
	go protect(log, name, f)
}

// protect runs f, turning a panic into a log record. It reports whether f
// panicked.
func protect(log *slog.Logger, name string, f func()) (panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			panicked = true
			log.Error("netup: goroutine panicked", "goroutine", name,
				"panic", r, "stack", string(debug.Stack()))
		}
	}()
	f()
	return false
}
