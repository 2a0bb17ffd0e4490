package safe

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

func TestRun(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if Run(log, "calm", func() {}) {
		t.Errorf("Run(calm) = true, want false")
	}
	if !Run(log, "wild", func() { panic("kaboom") }) {
		t.Errorf("Run(panicking) = false, want true")
	}
	if !strings.Contains(logs.String(), "kaboom") || !strings.Contains(logs.String(), "in=wild") {
		t.Errorf("Run(panicking) logged %q, want the panic and the name", logs.String())
	}
}

func TestGoSurvivesAPanic(t *testing.T) {
	var wg sync.WaitGroup
	wg.Add(1)
	Go(slog.New(slog.DiscardHandler), "wild", func() {
		defer wg.Done()
		panic("kaboom")
	})
	wg.Wait() // reaching here, the test process did not die
}
