package apps

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"allium/api"
	"allium/internal/testkit"
	"allium/supervisor/isolation"
	"allium/supervisor/network"
)

// A container's address is chosen when it is added, kept across a
// reboot, freed when it is removed; a published port belongs to one
// container. The node's network lives in a namespace the test makes.
func TestRootPrivateNetworkAddresses(t *testing.T) {
	testkit.NeedRoot(t)
	ctx := context.Background()
	dir, nodeNS := t.TempDir(), testkit.NetNS(t)
	boot := func() *node {
		n := newNode(t, dir)
		nw, err := network.New(network.Options{NetNS: int(nodeNS)})
		if err != nil {
			t.Fatal(err)
		}
		n.svc.UseNetwork(nw, "")
		n.svc.iso = func() isolation.Report { return nsReport() }
		return n
	}
	n := boot()
	push := func(n *node, port string) string {
		data, digest := image(t, `{"version": 1, "name": "p`+port+`", "command": ["/app"], "isolation": {"network": "private"}, "ports": [{"port": `+port+`}]}`)
		if _, err := n.svc.PutImage(ctx, digest, 0, int64(len(data)), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		return digest
	}
	p80, p81 := push(n, "80"), push(n, "81")
	put := func(n *node, name, image, want string) {
		t.Helper()
		c, err := n.svc.PutContainer(ctx, name, api.ContainerRequest{Image: image})
		if err != nil || c.Address != want {
			t.Errorf("PutContainer(%s) = address %q, %v, want %s", name, c.Address, err, want)
		}
	}
	put(n, "a", p80, "10.89.0.2")
	put(n, "b", p81, "10.89.0.3")
	if _, err := n.svc.PutContainer(ctx, "c", api.ContainerRequest{Image: p80}); !isStatus(err, 409) || !strings.Contains(err.Error(), "80/tcp is published by a") {
		t.Errorf("PutContainer(c, port 80 of a's) = %v, want 409 naming a", err)
	}
	n.close(t)

	n = boot() // a reboot
	defer n.close(t)
	if w := n.svc.Restore(); len(w) != 0 {
		t.Errorf("Restore warnings = %v", w)
	}
	for name, want := range map[string]string{"a": "10.89.0.2", "b": "10.89.0.3"} {
		if c, err := n.svc.Container(ctx, name); err != nil || c.Address != want {
			t.Errorf("after a reboot, Container(%s) = address %q, %v, want %s", name, c.Address, err, want)
		}
	}
	if err := n.svc.RemoveContainer(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	put(n, "c", p80, "10.89.0.2") // a's address and port, free again
}
