package api

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestSwitchTCP(t *testing.T) {
	n := startNode(t)
	c := n.dial(t, n.client)

	// Over TCP, with no published onion, switching TCP off is refused:
	// it would leave the caller no way back in.
	for _, tor := range []*Tor{nil, {State: "publishing"}} {
		n.backend.node.Tor = tor
		_, err := c.SetTCP(t.Context(), TCPRequest{Enabled: false})
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeLockOut || e.Status != 409 {
			t.Errorf("SetTCP(off) over TCP with tor %+v = %v, want 409 %s", tor, err, CodeLockOut)
		}
	}
	if got := n.backend.tcpSwitches.Load(); got != 0 {
		t.Fatalf("a refused switch reached the backend %d times", got)
	}

	// Forced, or with the onion published, it goes through.
	if st, err := c.SetTCP(t.Context(), TCPRequest{Enabled: false, Force: true}); err != nil || st.TCP != "off" {
		t.Errorf("SetTCP(off, force) = %+v, %v, want tcp off", st, err)
	}
	n.backend.node.Tor = &Tor{State: "running", Published: true}
	if st, err := c.SetTCP(t.Context(), TCPRequest{Enabled: false}); err != nil || st.TCP != "off" {
		t.Errorf("SetTCP(off) with the onion published = %+v, %v, want tcp off", st, err)
	}
	if st, err := c.SetTCP(t.Context(), TCPRequest{Enabled: true}); err != nil || st.TCP != ":7707" {
		t.Errorf("SetTCP(on) = %+v, %v, want :7707", st, err)
	}

	code, _, body := n.raw(t, "PUT", "/v1/node/tcp")
	if code != 400 {
		t.Errorf("PUT /v1/node/tcp with no body = %d %s, want 400", code, body)
	}
}

func TestRebootAndPoweroff(t *testing.T) {
	n := startNode(t)
	c := n.dial(t, n.client)
	if err := c.Reboot(t.Context()); err != nil {
		t.Errorf("Reboot() = %v", err)
	}
	if err := c.Poweroff(t.Context()); err != nil {
		t.Errorf("Poweroff() = %v", err)
	}
	if r, p := n.backend.reboots.Load(), n.backend.poweroffs.Load(); r != 1 || p != 1 {
		t.Errorf("backend saw %d Reboot and %d Poweroff, want 1 each", r, p)
	}
}

// POST /v1/node/uninstall: 409 with the node's reason when it was not
// installed over another system, else 202 with what it did.
func TestUninstall(t *testing.T) {
	n := startNode(t)
	c := n.dial(t, n.client)
	_, err := c.Uninstall(t.Context())
	var e *Error
	if !errors.As(err, &e) || e.Status != 409 || e.Code != CodeUnavailable || !strings.Contains(e.Message, "not installed over another system") {
		t.Errorf("Uninstall() of a node not installed = %v, want unavailable and the reason", err)
	}
	n.backend.installed = "kexec"
	a, err := c.Uninstall(t.Context())
	if err != nil || a.Status != "rebooting into the old system (kexec)" {
		t.Errorf("Uninstall() = %+v, %v, want the backend's status", a, err)
	}
	if r := n.backend.reboots.Load(); r != 1 {
		t.Errorf("backend saw %d reboots, want 1", r)
	}
}

// GET /v1/node carries the node's own cgroup where it has one, under
// "cgroup", and leaves the key out where it has none.
func TestNodeCgroup(t *testing.T) {
	n := startNode(t)
	c := n.dial(t, n.client)

	code, _, body := n.raw(t, "GET", "/v1/node")
	if code != 200 || strings.Contains(string(body), `"cgroup"`) {
		t.Errorf("GET /v1/node without cgroups = %d %s, want 200 and no \"cgroup\" key", code, body)
	}

	want := NodeCgroup{Path: "/allium/node", Memory: 38 << 20, MemoryPeak: 52 << 20, Pids: 14,
		Guaranteed: 64 << 20, ContainersMax: 192 << 20, ContainersMemory: 12 << 20}
	n.backend.node.Cgroup = &want
	got, err := c.Node(t.Context())
	if err != nil || got.Cgroup == nil || *got.Cgroup != want {
		t.Fatalf("Node() = %+v, %v, want cgroup %+v", got.Cgroup, err, want)
	}
	_, _, body = n.raw(t, "GET", "/v1/node")
	var fields struct {
		Cgroup map[string]any `json:"cgroup"`
	}
	if err := json.Unmarshal(body, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"path", "memory", "memory_peak", "pids", "guaranteed", "containers_max", "containers_memory"} {
		if _, ok := fields.Cgroup[k]; !ok {
			t.Errorf("GET /v1/node: cgroup = %v, want a %q field", fields.Cgroup, k)
		}
	}
}
