package qemutests

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// privatePort is where the private-network image's httpd listens in its
// own network namespace, published on the node's addresses.
const privatePort = 8090

// stepPrivateNetwork: an image with isolation.network private and a
// published port starts with an address of the node's range, becomes
// ready (its probe asks that address), and answers from the QEMU host
// through a port QEMU forwards to the node's own address, where the
// node's DNAT sends it on to the container. hostPort is that forward.
func stepPrivateNetwork(t *testing.T, n *appNode, hostPort int) {
	dir := t.TempDir()
	root := busyboxRoot(t, filepath.Join(dir, "root"))
	writeFile(t, filepath.Join(root, "www", "index.html"), "private\n")
	writeFile(t, filepath.Join(dir, "private.json"), fmt.Sprintf(`{"version": 1, "name": "private", "user": "nobody",
		"command": ["/bin/busybox", "httpd", "-f", "-p", "%d", "-h", "/www"],
		"isolation": {"network": "private"}, "ports": [{"port": %d}], "ready": {"tcp": %d}}`, privatePort, privatePort, privatePort))
	image := filepath.Join(dir, "private.txz")
	pack(t, n.env, root, image, "--manifest", filepath.Join(dir, "private.json"))

	if r := n.cloud(t, "start", n.name, image); r.code != 0 || !strings.Contains(r.stdout, "private is running") {
		t.Fatalf("cloud start %s private.txz = exit %d, %q %q, want 0 and \"private is running\"", n.name, r.code, r.stdout, r.stderr)
	}
	c := n.waitContainer(t, "private", "running", running)
	if a, err := netip.ParseAddr(c.Address); err != nil || !netip.MustParsePrefix("10.89.0.0/24").Contains(a) {
		t.Errorf("cloud ps %s --json: private address %q, want one of 10.89.0.0/24", n.name, c.Address)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/index.html", hostPort)
	deadline := time.Now().Add(appWithin)
	for {
		body, err := httpGet(url)
		if err == nil && body == "private\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s (the node's published port %d): no %q within %v; last: %q, %v", url, privatePort, "private\n", appWithin, body, err)
		}
		time.Sleep(appPoll)
	}
	if r := n.cloud(t, "rm", n.name, "private"); r.code != 0 {
		t.Errorf("cloud rm %s private = exit %d, %q", n.name, r.code, r.stderr)
	}
}
