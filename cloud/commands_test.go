package main

import (
	"encoding/json"
	"strings"
	"testing"

	"allium/api"
)

func TestInfoHuman(t *testing.T) {
	f := newFleet(t)
	code, out, _ := f.cloud(t, "info", "web1")
	if code != exitOK {
		t.Fatalf("cloud info web1: exit %d, want 0", code)
	}
	wantContains(t, "cloud info web1", out,
		"name:        web1\n",
		"version:     v0.1.0-test\n",
		"kernel:      6.1.0-28-cloud-amd64\n",
		"environment: vm\n",
		"uptime:      1h2m3s\n",
		"boot count:  7\n",
		"persistence: on, /dev/vda LABEL=allium-data\n",
		"memory:      1024 MiB total, 800 MiB available, init RSS 12 MiB\n",
		"warning:     no cgroups: resource limits are not enforced\n",
		"warning:     clock was reset\n",
	)
}

func TestInfoTor(t *testing.T) {
	f := newFleet(t)
	f.backend.node.TCP = "off"
	f.backend.node.Tor = &api.Tor{State: "crashloop", Onion: "abc.onion:7707", Restarts: 5, LastExit: "exit 1",
		LastError: "tor said: Couldn't create private data directory"}
	_, out, _ := f.cloud(t, "info", "web1")
	wantContains(t, "cloud info web1 with tor failing", out,
		"tcp:         off\n",
		"onion:       abc.onion:7707\n",
		"tor:         crashloop, 5 restarts (last: exit 1); tor said: Couldn't create private data directory\n")
	f.backend.node.Tor = &api.Tor{State: "running", Onion: "abc.onion:7707", Bootstrap: 45, BootstrapSummary: "Asking for relay descriptors", RSS: 14 << 20}
	_, out, _ = f.cloud(t, "info", "web1")
	wantContains(t, "cloud info web1 with tor bootstrapping", out,
		"tor:         running, not published yet (bootstrap 45%: Asking for relay descriptors), RSS 14 MiB\n")
}

func TestInfoIsolation(t *testing.T) {
	f := newFleet(t)
	f.backend.node.Isolation = &api.Isolation{Highest: "namespaces", Cgroup: "v2",
		Missing:     map[string]string{"userns": "user: user.max_user_namespaces=0", "cgroups": "user: user.max_user_namespaces=0"},
		Unprotected: "its root is the node's root (uid 0), only without capabilities"}
	_, out, _ := f.cloud(t, "info", "web1")
	wantContains(t, "cloud info web1 of a node at the namespaces rung", out,
		"isolation:     namespaces (cgroup v2)\n",
		"  no userns:   user: user.max_user_namespaces=0\n",
		"  no cgroups:  user: user.max_user_namespaces=0\n",
		"  unprotected: its root is the node's root (uid 0), only without capabilities\n")
}

// A kernel above what this build gives containers says both.
func TestInfoIsolationContainers(t *testing.T) {
	f := newFleet(t)
	f.backend.node.Isolation = &api.Isolation{Highest: "cgroups", Containers: "namespaces", Limited: true, Cgroup: "v2",
		Unprotected: "its root is the node's root (uid 0), only without capabilities"}
	_, out, _ := f.cloud(t, "info", "web1")
	wantContains(t, "cloud info web1 of a node whose containers get less than its kernel allows", out,
		"isolation:     cgroups (cgroup v2); containers get namespaces, as far as this build goes; with cgroup limits\n",
		"  unprotected: its root is the node's root (uid 0), only without capabilities\n")
}

// A node with cgroups shows what its own group uses, the memory kept
// for it, and the containers' share; one without shows neither row.
func TestInfoCgroup(t *testing.T) {
	f := newFleet(t)
	_, out, _ := f.cloud(t, "info", "web1")
	if strings.Contains(out, "node cgroup:") || strings.Contains(out, "containers:") {
		t.Errorf("cloud info web1 of a node without cgroups = %q, want no cgroup rows", out)
	}
	f.backend.node.Cgroup = &api.NodeCgroup{Path: "/allium/node", Memory: 38 << 20, MemoryPeak: 52 << 20, Pids: 14,
		Guaranteed: 102 << 20, ContainersMax: 922 << 20, ContainersMemory: 12 << 20}
	_, out, _ = f.cloud(t, "info", "web1")
	wantContains(t, "cloud info web1 of a node with cgroups", out,
		"memory:      1024 MiB total, 800 MiB available, init RSS 12 MiB\n"+
			"node cgroup: 38 MiB, peak 52 MiB, 14 tasks; 102 MiB guaranteed\n"+
			"containers:  12 MiB, capped at 922 MiB together\n")
	// A kernel that keeps no peak (cgroup v2 before Linux 5.19).
	f.backend.node.Cgroup.MemoryPeak = 0
	_, out, _ = f.cloud(t, "info", "web1")
	wantContains(t, "cloud info web1 without a memory peak", out,
		"node cgroup: 38 MiB, 14 tasks; 102 MiB guaranteed\n")
}

// cloud info said nothing about disk space (issue 10).
func TestInfoDisk(t *testing.T) {
	f := newFleet(t)
	f.backend.node.Disk = &api.Disk{Total: 1946 << 20, Free: 812 << 20, Files: 131072, FilesFree: 120310,
		Floor: 72 << 20, StateReserve: 16 << 20, Uploading: 30 << 20, Partial: 12 << 20}
	_, out, _ := f.cloud(t, "info", "web1")
	wantContains(t, "cloud info web1 with its disk", out,
		"disk:        812 MiB free of 1946 MiB; 120310 of 131072 inodes free\n",
		"  kept:      uploads leave 72 MiB free; state.db's reserve 16 MiB; 30 MiB uploading; 12 MiB in partial uploads\n")
	f.backend.node.Disk = &api.Disk{Total: 1946 << 20}
	_, out, _ = f.cloud(t, "info", "web1")
	wantContains(t, "cloud info web1 of a full disk", out, "0.0 MiB free of 1946 MiB; FULL: free space", "no reserve for state.db")
}

func TestInfoNotPersistent(t *testing.T) {
	f := newFleet(t)
	f.backend.node.Persistent = false
	_, out, _ := f.cloud(t, "info", "web1")
	wantContains(t, "cloud info web1 on tmpfs", out,
		"persistence: OFF: data is on tmpfs and will not survive a reboot\n")
}

func TestInfoJSON(t *testing.T) {
	f := newFleet(t)
	code, out, _ := f.cloud(t, "info", "web1", "--json")
	if code != exitOK {
		t.Fatalf("cloud info web1 --json: exit %d, want 0", code)
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(out), &fields); err != nil {
		t.Fatalf("cloud info --json printed %q, not JSON: %v", out, err)
	}
	for _, k := range []string{"name", "version", "kernel", "uptime_seconds", "boot_count",
		"environment", "persistent", "data", "memory", "warnings"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("cloud info --json has no %q field", k)
		}
	}
	wantContains(t, "cloud info --json", out, "\n  \"name\": \"web1\"")

	f.backend.node.Cgroup = &api.NodeCgroup{Path: "/allium/node", Memory: 38 << 20, Pids: 14}
	_, out, _ = f.cloud(t, "info", "web1", "--json")
	var n api.Node
	if err := json.Unmarshal([]byte(out), &n); err != nil || n.Cgroup == nil || *n.Cgroup != *f.backend.node.Cgroup {
		t.Errorf("cloud info --json of a node with cgroups = %q, want its cgroup %+v", out, *f.backend.node.Cgroup)
	}
}

func TestInfoByAddress(t *testing.T) {
	f := newFleet(t)
	code, out, _ := f.cloud(t, "info", f.addr, "--node-key", api.FormatKey(f.nodeKey))
	if code != exitOK || !strings.Contains(out, "name:        web1") {
		t.Errorf("cloud info ADDRESS:PORT --node-key: exit %d, output %q, want web1's info", code, out)
	}
}

func TestNodeKeyFlagWinsOverAlias(t *testing.T) {
	f := newFleet(t)
	f.alias(t, "stale", f.addr, otherKey(t))
	if code, _, _ := f.cloud(t, "info", "stale", "--node-key", api.FormatKey(f.nodeKey)); code != exitOK {
		t.Errorf("cloud info stale --node-key RIGHT: exit %d, want 0 (the flag wins over the alias)", code)
	}
}

func TestRebootAndPoweroff(t *testing.T) {
	f := newFleet(t)
	code, out, _ := f.cloud(t, "reboot", "web1")
	if code != exitOK || out != "web1: rebooting\n" {
		t.Errorf("cloud reboot web1: exit %d, output %q, want 0 and \"web1: rebooting\"", code, out)
	}
	code, out, _ = f.cloud(t, "poweroff", "web1")
	if code != exitOK || out != "web1: powering off\n" {
		t.Errorf("cloud poweroff web1: exit %d, output %q, want 0 and \"web1: powering off\"", code, out)
	}
	if r, p := f.backend.reboots.Load(), f.backend.poweroffs.Load(); r != 1 || p != 1 {
		t.Errorf("the backend saw %d reboots and %d poweroffs, want 1 each", r, p)
	}
}

func TestRebootJSON(t *testing.T) {
	f := newFleet(t)
	code, out, _ := f.cloud(t, "--json", "reboot", "web1")
	if code != exitOK || out != "{\n  \"status\": \"rebooting\"\n}\n" {
		t.Errorf("cloud --json reboot web1: exit %d, output %q, want the node's JSON answer", code, out)
	}
}

func TestNodes(t *testing.T) {
	f := newFleet(t)
	f.alias(t, "db1", "10.0.0.2:7707", otherKey(t))
	code, out, _ := f.cloud(t, "nodes")
	if code != exitOK {
		t.Fatalf("cloud nodes: exit %d, want 0", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") ||
		!strings.HasPrefix(lines[1], "db1") || !strings.HasPrefix(lines[2], "web1") {
		t.Fatalf("cloud nodes = %q, want a header, db1 and web1", out)
	}
	wantContains(t, "cloud nodes", lines[2], f.addr, api.Fingerprint(f.nodeKey))
}

func TestNodesEmpty(t *testing.T) {
	code, out, errOut := runCloud(t, "--config", t.TempDir(), "nodes")
	if code != exitOK || out != "" || !strings.Contains(errOut, "mkimage saves one") {
		t.Errorf("cloud nodes with no aliases: exit %d, stdout %q, stderr %q, want 0 and a hint on stderr", code, out, errOut)
	}
	code, out, _ = runCloud(t, "--config", t.TempDir(), "nodes", "--json")
	if code != exitOK || out != "[]\n" {
		t.Errorf("cloud nodes --json with no aliases: exit %d, output %q, want []", code, out)
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	f := newFleet(t)
	t.Setenv("ALLIUM_CONFIG", f.dir)
	if code, _, _ := runCloud(t, "info", "web1"); code != exitOK {
		t.Errorf("cloud info web1 with ALLIUM_CONFIG set: exit %d, want 0", code)
	}
}

func TestHelp(t *testing.T) {
	for _, cmd := range []string{"info", "reboot", "poweroff", "nodes"} {
		code, out, _ := runCloud(t, cmd, "--help")
		if code != exitOK {
			t.Errorf("cloud %s --help: exit %d, want 0", cmd, code)
		}
		wantContains(t, "cloud "+cmd+" --help", out, "Usage:", "Examples:", "cloud "+cmd)
	}
	_, out, _ := runCloud(t, "--help")
	wantContains(t, "cloud --help", out, "ADDRESS:PORT", "--node-key", "$ALLIUM_CONFIG", "Exit status")
}

func TestUptime(t *testing.T) {
	tests := []struct {
		seconds float64
		want    string
	}{
		{0, "0s"},
		{59.6, "1m0s"},
		{3723, "1h2m3s"},
		{3*86400 + 4*3600 + 5*60 + 6, "3d4h5m6s"},
		{86400, "1d"},
	}
	for _, tt := range tests {
		if got := uptime(tt.seconds); got != tt.want {
			t.Errorf("uptime(%v) = %q, want %q", tt.seconds, got, tt.want)
		}
	}
}
