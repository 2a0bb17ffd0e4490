package main

import (
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// newConsoleLogger logs to the console (PID 1's stderr) and, once /dev
// is mounted, to the kernel log, so `dmesg` and a serial console both
// show what init did.
func newConsoleLogger() (*slog.Logger, *consoleWriter) {
	w := &consoleWriter{console: os.Stderr}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: slog.LevelInfo,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.String("time", a.Value.Time().Format(time.TimeOnly))
			}
			return a
		},
	})), w
}

// consoleWriter writes each record to the console and to /dev/kmsg. The
// kmsg copy is at level info, below the console loglevel mkimage sets,
// so the console does not show it twice.
type consoleWriter struct {
	console io.Writer
	mu      sync.Mutex
	kmsg    *os.File
	useKmsg bool
}

// enableKmsg starts copying to the kernel log. Only a VM's init should:
// in an OS container /dev/kmsg, if present, is the host's.
func (w *consoleWriter) enableKmsg() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.useKmsg = true
}

func (w *consoleWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.console.Write(p)
	if w.useKmsg && w.kmsg == nil {
		w.kmsg, _ = os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	}
	if w.kmsg != nil {
		w.kmsg.Write(append([]byte("<6>allium: "), p...))
	}
	return len(p), nil
}
