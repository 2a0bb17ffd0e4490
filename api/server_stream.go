package api

import "net/http"

// Streams: logs as text/plain and events as application/x-ndjson. A
// followed stream sends its header at once, flushes after every write,
// and ends when the client goes away (its request context ends and the
// next write fails) or the node ends it.

// endStream answers err as JSON if nothing was sent yet; once the
// stream has begun, the status is gone and the error is only logged.
func (s *Server) endStream(w http.ResponseWriter, r *http.Request, sw *stream, err error) {
	switch {
	case err != nil && !sw.started:
		s.fail(w, r, err)
	case err != nil && r.Context().Err() == nil && !sw.broken:
		s.log.Warn("api: stream ended early", "path", r.URL.Path, "err", err)
	case !sw.started:
		sw.start() // nothing to send: an empty 200
	}
}

// stream is a response body that starts on the first write, and
// flushes after every write when it follows.
type stream struct {
	w           http.ResponseWriter
	rc          *http.ResponseController
	contentType string
	flush       bool
	started     bool
	broken      bool // a write failed: the client went away
}

func newStream(w http.ResponseWriter, contentType string, flush bool) *stream {
	return &stream{w: w, rc: http.NewResponseController(w), contentType: contentType, flush: flush}
}

func (s *stream) start() {
	if s.started {
		return
	}
	s.started = true
	s.w.Header().Set("Content-Type", s.contentType)
	s.w.Header().Set("X-Content-Type-Options", "nosniff")
	s.w.WriteHeader(http.StatusOK)
	if s.flush {
		s.rc.Flush()
	}
}

func (s *stream) Write(p []byte) (int, error) {
	s.start()
	n, err := s.w.Write(p)
	if err == nil && s.flush {
		err = s.rc.Flush()
	}
	if err != nil {
		s.broken = true
	}
	return n, err
}
