package safe

import (
	"log/slog"
	"runtime/debug"
)

// Go runs f in a new goroutine that recovers a panic and logs it, with
// the stack, under name. A nil log means slog.Default().
func Go(log *slog.Logger, name string, f func()) {
	go Run(log, name, f)
}

// Run runs f on this goroutine, turning a panic into a log record. It
// reports whether f panicked.
func Run(log *slog.Logger, name string, f func()) (panicked bool) {
	defer func() {
		if v := recover(); v != nil {
			panicked = true
			if log == nil {
				log = slog.Default()
			}
			log.Error("recovered a panic", "in", name, "panic", v, "stack", string(debug.Stack()))
		}
	}()
	f()
	return false
}
