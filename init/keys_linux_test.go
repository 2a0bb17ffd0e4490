package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"allium/api"
	"allium/internal/testbin"
	"allium/state"
)

// keysNode is a node with a state.db in a temp dir and one admin key,
// and no API or tor (keysChanged then has nothing to republish).
func keysNode(t *testing.T) (*node, ed25519.PublicKey, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	n := newNode(testLogger(&logs), &fakeKernel{}, t.TempDir())
	n.cfg.Tor.Off = true
	db, err := state.Open(filepath.Join(n.root, "state.db"), n.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	n.db = db
	admin, _ := api.NewKey()
	pub := admin.Public().(ed25519.PublicKey)
	if _, err := db.SeedKeys([]state.Key{{Public: pub, Name: "admin"}}); err != nil {
		t.Fatal(err)
	}
	return n, pub, &logs
}

func wantAPIError(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) || e.Status != status || e.Code != code {
		t.Errorf("%s = %v, want an *api.Error %d %q", what, err, status, code)
	}
}

func TestNodeKeys(t *testing.T) {
	n, adminKey, logs := keysNode(t)
	ctx := t.Context()
	if role, ok := n.Authorize(adminKey); !ok || role != api.RoleAdmin {
		t.Errorf("Authorize(seeded key with no role) = %q, %v, want admin", role, ok)
	}
	ci, _ := api.NewKey()
	ciKey := ci.Public().(ed25519.PublicKey)
	req := api.ClientKey{AuthorizedKey: api.AuthorizedKey{Key: ciKey, Onion: bytes.Repeat([]byte{7}, 32), Name: "ci"}, Role: api.RoleViewer}
	stored, created, err := n.AddKey(ctx, req)
	if err != nil || !created || stored.Added.IsZero() || stored.Role != api.RoleViewer {
		t.Fatalf("AddKey(ci) = %+v, %v, %v, want created as viewer", stored, created, err)
	}
	if _, created, err := n.AddKey(ctx, req); err != nil || created {
		t.Errorf("AddKey(ci) again = %v, %v, want no change", created, err)
	}
	if role, ok := n.Authorize(ciKey); !ok || role != api.RoleViewer {
		t.Errorf("Authorize(ci) = %q, %v, want viewer", role, ok)
	}
	req.Name = "ci2"
	_, _, err = n.AddKey(ctx, req)
	wantAPIError(t, "AddKey(ci's key as ci2)", err, http.StatusConflict, api.CodeConflict)

	_, err = n.RemoveKey(ctx, api.Fingerprint(adminKey))
	wantAPIError(t, "RemoveKey(the last admin)", err, http.StatusConflict, api.CodeLastAdmin)
	_, err = n.RemoveKey(ctx, "nosuch")
	wantAPIError(t, "RemoveKey(nosuch)", err, http.StatusNotFound, api.CodeNotFound)
	gone, err := n.RemoveKey(ctx, api.FormatKey(ciKey))
	if err != nil || gone.Name != "ci" {
		t.Errorf("RemoveKey(ci's key) = %+v, %v", gone, err)
	}
	if _, ok := n.Authorize(ciKey); ok {
		t.Errorf("Authorize(ci) after removal = true")
	}
	keys, err := n.Keys(ctx)
	if err != nil || len(keys) != 1 || keys[0].Name != "admin" {
		t.Errorf("Keys() = %+v, %v, want admin alone", keys, err)
	}
	if !strings.Contains(logs.String(), `keys: removed" name=ci`) {
		t.Errorf("the removal was not logged:\n%s", logs)
	}
}

func TestNodeKeysWithoutDB(t *testing.T) {
	n := newNode(testLogger(&bytes.Buffer{}), &fakeKernel{}, t.TempDir())
	if _, ok := n.Authorize(make(ed25519.PublicKey, ed25519.PublicKeySize)); ok {
		t.Errorf("Authorize() without a state.db = true")
	}
	_, err := n.Keys(t.Context())
	wantAPIError(t, "Keys() without a state.db", err, http.StatusServiceUnavailable, api.CodeUnavailable)
}

// TestPID1Keys drives the keys API of the real init as PID 1: a second
// key works once added and gets 401 once removed, on the connection it
// already had; a viewer only reads; the last admin stays; and the
// database, not the baked file, is the truth at the next boot.
func TestPID1Keys(t *testing.T) {
	requireRoot(t)
	bin := testbin.Path(t, "init")
	dir, port, client, node := newChroot(t, bin)
	c := startContainerNode(t, dir, port, client, node)
	ctx := context.Background()
	c.waitUp()
	c.waitLog(`api: listening" network=tcp`)
	admin := c.tcp(client)

	laptop, _ := api.NewKey()
	req := api.KeyRequest{Name: "laptop", Key: api.FormatKey(laptop.Public().(ed25519.PublicKey)), OnionKey: api.FormatOnionKey(bytes.Repeat([]byte{1}, 32))}
	if _, created, err := admin.AddKey(ctx, req); err != nil || !created {
		t.Fatalf("AddKey(laptop) = %v, %v, want created", created, err)
	}
	if _, created, err := admin.AddKey(ctx, req); err != nil || created {
		t.Errorf("AddKey(laptop) again = %v, %v, want no change", created, err)
	}
	lc := c.tcp(laptop)
	if _, err := lc.Node(ctx); err != nil {
		t.Errorf("Node() with the added key = %v", err)
	}
	viewer, _ := api.NewKey()
	if _, _, err := admin.AddKey(ctx, api.KeyRequest{Name: "ci", Key: api.FormatKey(viewer.Public().(ed25519.PublicKey)), Role: api.RoleViewer}); err != nil {
		t.Fatal(err)
	}
	vc := c.tcp(viewer)
	if keys, err := vc.Keys(ctx); err != nil || len(keys) != 3 {
		t.Errorf("Keys() as the viewer = %+v, %v, want 3 keys", keys, err)
	}
	wantAPIError(t, "Poweroff() as the viewer", vc.Poweroff(ctx), http.StatusForbidden, api.CodeForbidden)

	if gone, err := admin.RemoveKey(ctx, "laptop"); err != nil || gone.Name != "laptop" {
		t.Errorf("RemoveKey(laptop) = %+v, %v", gone, err)
	}
	_, err := lc.Node(ctx)
	wantAPIError(t, "Node() with the removed key", err, http.StatusUnauthorized, api.CodeUnauthorized)
	_, err = admin.RemoveKey(ctx, "admin")
	wantAPIError(t, "RemoveKey(the last admin)", err, http.StatusConflict, api.CodeLastAdmin)
	// The unix socket is root on the node: an admin without a key.
	if keys, err := c.unix().Keys(ctx); err != nil || len(keys) != 2 {
		t.Errorf("Keys() on the unix socket = %+v, %v, want admin and ci", keys, err)
	}

	syscall.Kill(c.pid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("init did not exit within 30 s of SIGTERM")
	}
	c2 := startContainerNode(t, dir, port, client, node)
	c2.waitUp()
	c2.waitLog(`api: listening" network=tcp`)
	if _, err := c2.tcp(viewer).Node(ctx); err != nil {
		t.Errorf("Node() as the viewer after a reboot = %v", err)
	}
	_, err = c2.tcp(laptop).Node(ctx)
	wantAPIError(t, "Node() with the removed key after a reboot", err, http.StatusUnauthorized, api.CodeUnauthorized)
	syscall.Kill(c2.pid, syscall.SIGTERM)
	<-c2.done
}
