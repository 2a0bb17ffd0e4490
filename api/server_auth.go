package api

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
)

// Authentication on the TLS listeners, TCP and onion: the client's key
// must be one the Backend authorizes, and its role must allow the
// method. Each request is checked, not each connection. (tls.go makes
// the TLS configuration; peercred_linux.go checks the unix socket.)

// requireKey serves h only to authorized client keys whose role allows
// the request, and answers 401 or 403, saying why, to the others. A 401
// closes the connection: a stranger gets one answer, not a place to
// idle (server_limit.go).
func (s *Server) requireKey(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusUnauthorized, CodeUnauthorized, "no client certificate")
			return
		}
		pub, ok := r.TLS.PeerCertificates[0].PublicKey.(ed25519.PublicKey)
		var role string
		if ok {
			role, ok = s.backend.Authorize(pub)
		}
		if !ok {
			s.strangers.warn(s.log, "api: refused an unknown client key", "remote", r.RemoteAddr, "key", fmt.Sprint(fingerprintOf(pub)))
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusUnauthorized, CodeUnauthorized,
				fmt.Sprintf("client key %s is not authorized on this node", fingerprintOf(pub)))
			return
		}
		c := caller{key: pub, role: role}
		if !mayDo(role, r.Method) {
			e := forbidden(c, r)
			writeError(w, e.Status, e.Code, e.Message)
			return
		}
		h.ServeHTTP(w, withCaller(r, c))
	})
}

func fingerprintOf(pub ed25519.PublicKey) string {
	if len(pub) != ed25519.PublicKeySize {
		return "(not ed25519)"
	}
	return Fingerprint(pub)
}

// callerKey is the context key of the authenticated caller.
type callerKey struct{}

// caller is who sent a request: its key (nil on the unix socket, which
// serves root only) and its role.
type caller struct {
	key  ed25519.PublicKey
	role string
}

func (c caller) String() string {
	if c.key == nil {
		return "root on the node"
	}
	return fingerprintOf(c.key)
}

func withCaller(r *http.Request, c caller) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), callerKey{}, c))
}

// callerOf returns the request's caller; root on the node when no key
// check ran (the unix socket).
func callerOf(ctx context.Context) caller {
	c, ok := ctx.Value(callerKey{}).(caller)
	if !ok {
		return caller{role: RoleAdmin}
	}
	return c
}

// mayDo reports whether role may send method: a viewer reads (GET and
// HEAD) and nothing else; a role this node does not know may do nothing.
func mayDo(role, method string) bool {
	switch role {
	case "", RoleAdmin:
		return true
	case RoleViewer:
		return method == http.MethodGet || method == http.MethodHead
	}
	return false
}

// forbidden explains to c why it may not send r.
func forbidden(c caller, r *http.Request) *Error {
	if c.role == RoleViewer {
		return Forbidden("client key %s has the role %s, which may only read (GET and HEAD), not %s %s; ask an admin of this node",
			fingerprintOf(c.key), c.role, r.Method, r.URL.Path)
	}
	return Forbidden("client key %s has the role %q, which this node does not know; ask an admin of this node to add it again as %s or %s",
		fingerprintOf(c.key), c.role, RoleAdmin, RoleViewer)
}
