package main

import (
	"context"
	"crypto/ed25519"
	"errors"

	"allium/api"
	"allium/state"
)

// The node's authorized client keys live in state.db (seeded once from
// the baked authorized_keys, see seedKeys); these are the API's
// KeyStore and Authorize over them. Every change is followed by
// keysChanged, which republishes the onion with the new client list,
// so a removed client loses TLS and the onion together.

// Authorize returns the role of key, and false when state.db does not
// hold it.
func (n *node) Authorize(key ed25519.PublicKey) (string, bool) {
	if n.db == nil {
		return "", false
	}
	k, ok, err := n.db.Key(key)
	if err != nil {
		n.log.Error("keys: reading", "err", err)
		return "", false
	}
	if !ok {
		return "", false
	}
	if k.IsAdmin() {
		return api.RoleAdmin, true
	}
	return k.Role, true
}

// Keys lists the authorized keys.
func (n *node) Keys(context.Context) ([]api.ClientKey, error) {
	if n.db == nil {
		return nil, errNoDB
	}
	keys, err := n.db.Keys()
	if err != nil {
		return nil, err
	}
	out := make([]api.ClientKey, 0, len(keys))
	for _, k := range keys {
		out = append(out, clientKey(k))
	}
	return out, nil
}

// AddKey authorizes k; the same key again changes nothing.
func (n *node) AddKey(_ context.Context, k api.ClientKey) (api.ClientKey, bool, error) {
	if n.db == nil {
		return api.ClientKey{}, false, errNoDB
	}
	stored, created, err := n.db.AddKey(state.Key{Public: k.Key, Onion: k.Onion, Name: k.Name, Role: k.Role})
	if errors.Is(err, state.ErrKeyConflict) {
		return api.ClientKey{}, false, api.Conflict("%v; remove it first (cloud keys HOST rm) or use another name", err)
	}
	if err != nil {
		return api.ClientKey{}, false, err
	}
	if created {
		n.log.Info("keys: added", "name", k.Name, "key", api.Fingerprint(k.Key), "role", k.Role, "onion", k.Onion != nil)
		n.keysChanged()
	}
	return clientKey(stored), created, nil
}

// RemoveKey removes the key that id names, unless it is the last
// admin key.
func (n *node) RemoveKey(_ context.Context, id string) (api.ClientKey, error) {
	if n.db == nil {
		return api.ClientKey{}, errNoDB
	}
	gone, err := n.db.RemoveKey(func(k state.Key) bool { return clientKey(k).Matches(id) })
	switch {
	case errors.Is(err, state.ErrKeyNotFound):
		return api.ClientKey{}, api.NotFound("no authorized key is named %q or has that fingerprint or key", id)
	case errors.Is(err, state.ErrKeyAmbiguous):
		return api.ClientKey{}, api.Conflict("%q %v; remove it by fingerprint", id, err)
	case errors.Is(err, state.ErrLastAdmin):
		return api.ClientKey{}, api.LastAdmin("%q is the last admin key: removing it would leave nobody to manage this node; add another admin key first", id)
	case err != nil:
		return api.ClientKey{}, err
	}
	n.log.Info("keys: removed", "name", gone.Name, "key", api.Fingerprint(gone.Public))
	n.keysChanged()
	return clientKey(gone), nil
}

// errNoDB answers key requests when state.db did not open.
var errNoDB = api.Unavailable("the node's state database is not open; see the console log")

func clientKey(k state.Key) api.ClientKey {
	return api.ClientKey{
		AuthorizedKey: api.AuthorizedKey{Key: ed25519.PublicKey(k.Public), Onion: k.Onion, Name: k.Name},
		Role:          k.Role,
		Added:         k.Added,
	}
}
