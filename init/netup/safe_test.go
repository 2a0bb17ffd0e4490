package netup

import (
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestProtect(t *testing.T) {
	var buf lockedBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	if protect(log, "calm", func() {}) {
		t.Errorf("protect(calm) = true, want false")
	}
	if !protect(log, "wild", func() { panic("kaboom") }) {
		t.Errorf("protect(panicking) = false, want true")
	}
	out := buf.String()
	for _, want := range []string{"goroutine=wild", "panic=kaboom", "stack="} {
		if !strings.Contains(out, want) {
			t.Errorf("log after a panic = %q, want it to contain %q", out, want)
		}
	}
}

// notifyHandler reports each record's message on a channel.
type notifyHandler struct{ ch chan string }

func (h notifyHandler) Enabled(context.Context, slog.Level) bool      { return true }
func (h notifyHandler) Handle(_ context.Context, r slog.Record) error { h.ch <- r.Message; return nil }
func (h notifyHandler) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h notifyHandler) WithGroup(string) slog.Handler                 { return h }

func TestGoSafe(t *testing.T) {
	h := notifyHandler{make(chan string, 1)}
	goSafe(slog.New(h), "wild", func() { panic("kaboom") })
	if got := <-h.ch; got != "netup: goroutine panicked" {
		t.Errorf("goSafe(panicking) logged %q, want %q", got, "netup: goroutine panicked")
	}
}
