package apps

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"allium/api"
	"allium/supervisor/isolation"
)

// nsReport is a probe's report of a node at the namespaces rung, with
// the named checks failing.
func nsReport(failing ...string) isolation.Report {
	r := isolation.Report{Highest: isolation.Namespaces}
	for _, c := range []string{"mount", "private_mounts", "pid", "uts", "ipc", "net", "nftables"} {
		ch := isolation.Check{Name: c, OK: true}
		for _, f := range failing {
			if f == c {
				ch = isolation.Check{Name: c, Why: "EPERM"}
			}
		}
		r.Checks = append(r.Checks, ch)
	}
	return r
}

// Hostile or unserviceable private networks are refused at start, each
// with a clear reason, and nothing is created: a port out of range (at
// push), a node lacking network namespaces or nftables, a node whose
// network is not set up.
func TestPrivateNetworkRefusals(t *testing.T) {
	ctx := context.Background()
	n := newNode(t, t.TempDir())
	defer n.close(t)

	data, digest := image(t, `{"version": 1, "name": "p", "command": ["/app"], "isolation": {"network": "private"}, "ports": [{"port": 70000}]}`)
	if _, err := n.svc.PutImage(ctx, digest, 0, int64(len(data)), bytes.NewReader(data)); err == nil || !strings.Contains(err.Error(), "ports[0].port 70000: want 1-65535") {
		t.Errorf("PutImage(port 70000) = %v, want the port named", err)
	}

	data, digest = image(t, `{"version": 1, "name": "p", "command": ["/app"], "isolation": {"network": "private"}, "ports": [{"port": 80}]}`)
	if _, err := n.svc.PutImage(ctx, digest, 0, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	n.svc.UseNetwork(nil, "no reason given")
	for _, tt := range []struct {
		report isolation.Report
		want   string
	}{
		{nsReport("net"), "lacks network namespaces (net: EPERM)"},
		{nsReport("nftables"), "lacks nftables (nftables: EPERM)"},
		{nsReport(), "no reason given"},
	} {
		n.svc.iso = func() isolation.Report { return tt.report }
		_, err := n.svc.PutContainer(ctx, "p", api.ContainerRequest{Image: digest})
		if !isStatus(err, 409) || !strings.Contains(err.Error(), "isolation.network private") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("PutContainer(private) = %v, want 409 containing %q", err, tt.want)
		}
	}
	if cs, _ := n.db.Containers(); len(cs) != 0 {
		t.Errorf("containers after the refusals = %+v, want none", cs)
	}
	if _, err := os.Stat(filepath.Join(ContainersDir(n.svc.roots.data), "p")); err == nil {
		t.Error("the refused container's root was made")
	}
}
