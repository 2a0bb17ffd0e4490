package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// getNode serves GET /v1/node.
func (s *Server) getNode(w http.ResponseWriter, r *http.Request) {
	n, err := s.backend.Node(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, CodeInternal, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, n)
}

// action makes a handler that starts do, which returns at once, and
// answers 202 with status.
func (s *Server) action(status string, do func() error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := do(); err != nil {
			writeError(w, http.StatusConflict, CodeUnavailable, err.Error())
			return
		}
		writeJSON(w, http.StatusAccepted, Accepted{Status: status})
	}
}

// uninstall serves POST /v1/node/uninstall.
func (s *Server) uninstall(w http.ResponseWriter, r *http.Request) {
	status, err := s.backend.Uninstall()
	if err != nil {
		writeError(w, http.StatusConflict, CodeUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, Accepted{Status: status})
}

// putTCP serves PUT /v1/node/tcp. It refuses to switch TCP off from a
// TCP connection while the onion is not published, unless forced.
func (s *Server) putTCP(w http.ResponseWriter, r *http.Request) {
	var req TCPRequest
	d := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	d.DisallowUnknownFields()
	if err := d.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf(`body: %v; want {"enabled": true|false}`, err))
		return
	}
	if !req.Enabled && !req.Force && Via(r.Context()) == ViaTCP {
		if why := s.onionDown(r.Context()); why != "" {
			writeError(w, http.StatusConflict, CodeLockOut,
				"switching TCP off from a TCP connection would leave no way in: "+why+
					"; reach the node through its onion first, or force it if you have its console or unix socket")
			return
		}
	}
	if err := s.backend.SetTCP(req.Enabled); err != nil {
		writeError(w, http.StatusInternalServerError, CodeInternal, err.Error())
		return
	}
	n, err := s.backend.Node(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, CodeInternal, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, TCPState{TCP: n.TCP})
}

// onionDown says why the node's onion cannot be relied on, or "" when
// it is published.
func (s *Server) onionDown(ctx context.Context) string {
	n, err := s.backend.Node(ctx)
	switch {
	case err != nil:
		return fmt.Sprintf("the node's state is unknown (%v)", err)
	case n.Tor == nil:
		return "the node runs no tor"
	case !n.Tor.Published:
		return fmt.Sprintf("its onion is not published (tor is %s)", n.Tor.State)
	}
	return ""
}
