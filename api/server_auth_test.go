package api

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestAuthorizedClientGetsNode(t *testing.T) {
	n := startNode(t)
	got, err := n.dial(t, n.client).Node(t.Context())
	if err != nil {
		t.Fatalf("Node() = %v", err)
	}
	if got.Name != "web1" || got.Environment != EnvVM || !got.Persistent {
		t.Errorf("Node() = %+v, want the backend's node %+v", got, n.backend.node)
	}
}

func TestUnknownClientKeyIsRefused(t *testing.T) {
	n := startNode(t)
	stranger := newKey(t)
	c := n.dial(t, stranger)
	calls := map[string]func(context.Context) error{
		"Node":     func(ctx context.Context) error { _, err := c.Node(ctx); return err },
		"Reboot":   c.Reboot,
		"Poweroff": c.Poweroff,
	}
	for name, call := range calls {
		err := call(t.Context())
		var e *Error
		if !errors.As(err, &e) || e.Status != http.StatusUnauthorized || e.Code != CodeUnauthorized {
			t.Fatalf("%s() with an unknown key = %v, want *Error 401 %q", name, err, CodeUnauthorized)
		}
		if fp := Fingerprint(stranger.Public().(ed25519.PublicKey)); !strings.Contains(e.Message, fp) {
			t.Errorf("%s() error %q does not name the refused key %s", name, e.Message, fp)
		}
	}
	b := n.backend
	if b.reboots.Load() != 0 || b.poweroffs.Load() != 0 || b.nodes.Load() != 0 {
		t.Errorf("an unknown client reached the backend: %d Node, %d Reboot, %d Poweroff",
			b.nodes.Load(), b.reboots.Load(), b.poweroffs.Load())
	}
}

func TestWrongPinnedNodeKey(t *testing.T) {
	n := startNode(t)
	impostor := newKey(t).Public().(ed25519.PublicKey)
	c, err := NewClient(n.addr, n.client, impostor)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Reboot(t.Context())
	if !errors.Is(err, ErrNodeKey) {
		t.Fatalf("Reboot() pinning the wrong node key = %v, want an error wrapping ErrNodeKey", err)
	}
	for _, fp := range []string{Fingerprint(impostor), Fingerprint(n.key.Public().(ed25519.PublicKey))} {
		if !strings.Contains(err.Error(), fp) {
			t.Errorf("Reboot() error %q does not show fingerprint %s", err, fp)
		}
	}
	// The handshake fails before the server sees a request: not even the
	// key check ran.
	if a, r := n.backend.auths.Load(), n.backend.reboots.Load(); a != 0 || r != 0 {
		t.Errorf("the request was sent anyway: %d Authorize, %d Reboot calls", a, r)
	}
}
