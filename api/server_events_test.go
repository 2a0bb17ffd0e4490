package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestEvents(t *testing.T) {
	n, apps := startApps(t)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	apps.events = []Event{{Time: t0, Type: EventStart, Container: "foo", Message: "started"}}
	status, header, body := n.raw(t, http.MethodGet, "/v1/events")
	if status != 200 || header.Get("Content-Type") != "application/x-ndjson" || strings.Count(string(body), "\n") != 1 {
		t.Errorf("GET /v1/events: %d %q %q, want 200 application/x-ndjson, one line", status, header.Get("Content-Type"), body)
	}
	ctx, cancel := context.WithCancel(t.Context())
	events := make(chan string)
	done := make(chan error, 1)
	go func() {
		done <- n.dial(t, n.client).Events(ctx, true, func(e Event) error { events <- e.Type + " " + e.Container; return nil })
	}()
	wantLine(t, events, "start foo")
	apps.newEvents <- Event{Time: t0, Type: EventExit, Container: "foo", Exit: &Exit{Code: 1}}
	wantLine(t, events, "exit foo")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Events() after cancel = %v, want context.Canceled", err)
	}
	waitFollowerGone(t, apps)
}
