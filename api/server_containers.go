package api

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"allium/manifest"
)

// ContainerStore is the node's containers: what the handlers of
// /v1/containers ask of it (containers.go). Apps says how a method
// answers an error.
type ContainerStore interface {
	// Containers lists the containers.
	Containers(ctx context.Context) ([]Container, error)
	// Container returns one container, or NotFound.
	Container(ctx context.Context, name string) (Container, error)
	// PutContainer creates and starts a container, or replaces its
	// image (stop old, start new; volumes carry over). The same image
	// again changes nothing. An image not on the node is NotFound.
	PutContainer(ctx context.Context, name string, req ContainerRequest) (Container, error)
	// StartContainer, StopContainer and RestartContainer are operator
	// actions (they never count as failures). They may return before
	// the container has got there (State starting or stopping).
	StartContainer(ctx context.Context, name string) (Container, error)
	StopContainer(ctx context.Context, name string) (Container, error)
	RestartContainer(ctx context.Context, name string) (Container, error)
	// SignalContainer sends a signal ("SIGKILL", "TERM"...) to the
	// workload's process group; Conflict when it is not running.
	SignalContainer(ctx context.Context, name, signal string) (Container, error)
	// RemoveContainer stops and removes a container; volumes are kept.
	RemoveContainer(ctx context.Context, name string) error
	// Logs writes the container's log lines, "RFC3339NANO STREAM LINE\n"
	// each, to w: the last opts.Tail lines (all when negative), then,
	// with opts.Follow, new ones until ctx ends. Every Write reaches
	// the client at once when following; w is not safe for concurrent
	// use. A Write error means the client went away.
	Logs(ctx context.Context, name string, opts LogOptions, w io.Writer) error
	// ContainerStats reads what the container uses now; NotFound for
	// an unknown name.
	ContainerStats(ctx context.Context, name string) (ContainerStats, error)
}

func (s *Server) containerStats(w http.ResponseWriter, r *http.Request) {
	name, ok := s.nameParam(w, r)
	if !ok {
		return
	}
	st, err := s.backend.ContainerStats(r.Context(), name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// nameParam returns the path's {name}, or answers 400.
func (s *Server) nameParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.PathValue("name")
	if err := manifest.ValidName(name); err != nil {
		s.fail(w, r, BadRequest("container name %v", err))
		return "", false
	}
	return name, true
}

func (s *Server) listContainers(w http.ResponseWriter, r *http.Request) {
	cs, err := s.backend.Containers(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(cs))
}

// container makes a handler that does one thing to the named container
// and answers with it.
func (s *Server) container(do func(ContainerStore, context.Context, string) (Container, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, ok := s.nameParam(w, r)
		if !ok {
			return
		}
		c, err := do(s.backend, r.Context(), name)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, c)
	}
}

func (s *Server) putContainer(w http.ResponseWriter, r *http.Request) {
	name, ok := s.nameParam(w, r)
	if !ok {
		return
	}
	req, err := decodeContainerRequest(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := s.backend.PutContainer(r.Context(), name, req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func decodeContainerRequest(w http.ResponseWriter, r *http.Request) (ContainerRequest, error) {
	var req ContainerRequest
	if err := decodeJSON(w, r, &req, `{"image": "sha256:..."}`); err != nil {
		return req, err
	}
	if err := ValidDigest(req.Image); err != nil {
		return req, BadRequest("image %v", err)
	}
	return req, nil
}

func (s *Server) killContainer(w http.ResponseWriter, r *http.Request) {
	name, ok := s.nameParam(w, r)
	if !ok {
		return
	}
	var req SignalRequest // an empty body means SIGKILL
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &req, `{"signal": "TERM"}`); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	c, err := s.backend.SignalContainer(r.Context(), name, req.Signal)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Server) deleteContainer(w http.ResponseWriter, r *http.Request) {
	name, ok := s.nameParam(w, r)
	if !ok {
		return
	}
	if err := s.backend.RemoveContainer(r.Context(), name); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// logs serves GET /v1/containers/{name}/logs?tail=N&follow=1.
func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	name, ok := s.nameParam(w, r)
	if !ok {
		return
	}
	opts, err := logOptions(r.URL.Query())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sw := newStream(w, "text/plain; charset=utf-8", opts.Follow)
	if opts.Follow {
		// Say 404 now rather than after a silence.
		if _, err := s.backend.Container(r.Context(), name); err != nil {
			s.fail(w, r, err)
			return
		}
		sw.start()
	}
	s.endStream(w, r, sw, s.backend.Logs(r.Context(), name, opts, sw))
}

func logOptions(q url.Values) (LogOptions, error) {
	opts := LogOptions{Tail: -1}
	follow, err := queryBool(q, "follow")
	if err != nil {
		return opts, err
	}
	opts.Follow = follow
	switch v := q.Get("tail"); v {
	case "", "all":
	default:
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return opts, BadRequest("tail %q: want a number of lines or \"all\"", v)
		}
		opts.Tail = n
	}
	return opts, nil
}
