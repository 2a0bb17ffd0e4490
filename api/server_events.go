package api

import (
	"context"
	"encoding/json"
	"net/http"
)

// EventLog is the node's record of what happened to its containers and
// images: what GET /v1/events asks of it (events.go).
type EventLog interface {
	// Events calls emit for each recorded event, oldest first, then,
	// with follow, for each new one until ctx ends or emit fails.
	Events(ctx context.Context, follow bool, emit func(Event) error) error
}

// events serves GET /v1/events?follow=1.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	follow, err := queryBool(r.URL.Query(), "follow")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sw := newStream(w, "application/x-ndjson", follow)
	if follow {
		sw.start()
	}
	enc := json.NewEncoder(sw) // one Write per event: a line each
	err = s.backend.Events(r.Context(), follow, func(e Event) error { return enc.Encode(e) })
	s.endStream(w, r, sw, err)
}
