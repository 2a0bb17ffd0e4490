package api

import (
	"context"
	"net/http"
	"slices"
	"strings"
)

// KeyStore is the node's authorized client keys: what the handlers of
// /v1/keys ask of the node (the protocol is in keys.go).
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
	if err := decodeJSON(w, r, &req, `{"name": "laptop", "key": "ed25519:..."}`); err != nil {
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
