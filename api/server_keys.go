package api

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"slices"
	"strings"
)

// KeyStore is the node's authorized client keys: what the handlers of
// /v1/keys ask of the node (the protocol is in keys_wire.go).
//
// The handlers parse and check requests before calling, so AddKey sees
// a well-formed key with its Role set. To answer with an honest
// status, a method returns an *Error made by NotFound, Conflict,
// LastAdmin or BadRequest (wrapped or not); any other error answers
// 500 with its text.
type KeyStore interface {
	// Keys lists the authorized keys.
	Keys(ctx context.Context) ([]ClientKey, error)
	// AddKey authorizes k and returns the key as stored, and whether it
	// was new. The same key with the same fields again is no change;
	// a key, name or onion key that another entry holds is Conflict.
	AddKey(ctx context.Context, k ClientKey) (stored ClientKey, created bool, err error)
	// RemoveKey removes the key that id names (ClientKey.Matches) and
	// returns it: NotFound when none does, Conflict when several do,
	// LastAdmin when it is the only admin key. Once it returns, no
	// new request with that key is authorized.
	RemoveKey(ctx context.Context, id string) (ClientKey, error)
}

func (s *Server) keyRoutes() {
	s.mux.HandleFunc("GET /v1/keys", s.listKeys)
	s.mux.HandleFunc("POST /v1/keys", s.addKey)
	s.mux.HandleFunc("DELETE /v1/keys/{id...}", s.removeKey)
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.backend.Keys(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	me := callerOf(r.Context()).key
	out := make([]KeyInfo, 0, len(keys))
	for _, k := range keys {
		info := k.Info()
		info.You = me != nil && me.Equal(k.Key)
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b KeyInfo) int { return strings.Compare(a.Name, b.Name) })
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) addKey(w http.ResponseWriter, r *http.Request) {
	var req KeyRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	k, err := req.Parse()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	stored, created, err := s.backend.AddKey(r.Context(), k)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		s.log.Info("api: key added", "name", stored.Name, "key", fingerprintOf(stored.Key), "role", stored.Info().Role, "by", callerOf(r.Context()))
	}
	writeJSON(w, status, stored.Info())
}

func (s *Server) removeKey(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" {
		s.fail(w, r, BadRequest("DELETE /v1/keys/{id}: id missing; give a key's name, fingerprint (SHA256:...) or key (ed25519:...)"))
		return
	}
	gone, err := s.backend.RemoveKey(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("api: key removed", "name", gone.Name, "key", fingerprintOf(gone.Key), "by", callerOf(r.Context()))
	writeJSON(w, http.StatusOK, gone.Info())
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

// UnimplementedKeys answers every keys request with 501. A Backend
// embeds it until it manages keys.
type UnimplementedKeys struct{}

var errNoKeys = NotImplemented("this node does not manage keys over the API")

func (UnimplementedKeys) Keys(context.Context) ([]ClientKey, error) { return nil, errNoKeys }
func (UnimplementedKeys) AddKey(context.Context, ClientKey) (ClientKey, bool, error) {
	return ClientKey{}, false, errNoKeys
}
func (UnimplementedKeys) RemoveKey(context.Context, string) (ClientKey, error) {
	return ClientKey{}, errNoKeys
}
