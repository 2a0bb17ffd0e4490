package api

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net"
	"strings"
	"testing"
)

// TestClientDialer: a client whose connections go through a dial
// function (tor's SOCKS port for an onion) hands it the node's name
// unresolved, and pins the node's key as NewClient does.
func TestClientDialer(t *testing.T) {
	n := startNode(t)
	const onion = "example.onion:7707"
	var asked []string
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		asked = append(asked, addr)
		var d net.Dialer
		return d.DialContext(ctx, network, n.addr)
	}
	c, err := NewClientDialer(onion, n.client, n.key.Public().(ed25519.PublicKey), dial)
	if err != nil {
		t.Fatal(err)
	}
	node, err := c.Node(t.Context())
	if err != nil || node.Name != "web1" {
		t.Fatalf("Node() through the dialer = %+v, %v, want web1", node, err)
	}
	if len(asked) != 1 || asked[0] != onion {
		t.Errorf("dial asked for %q, want [%s] once", asked, onion)
	}

	impostor := newKey(t).Public().(ed25519.PublicKey)
	c, err = NewClientDialer(onion, n.client, impostor, dial)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Node(t.Context()); !errors.Is(err, ErrNodeKey) {
		t.Errorf("Node() pinning the wrong key through the dialer = %v, want ErrNodeKey", err)
	}
	if _, err := NewClientDialer(onion, n.client, impostor, nil); err == nil || !strings.Contains(err.Error(), "no dial function") {
		t.Errorf("NewClientDialer(nil dial) = %v, want an error", err)
	}
}
