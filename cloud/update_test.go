package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// initFile writes n bytes standing for an init; the fake node checks
// only their digest.
func initFile(t *testing.T, n int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(p, app(n, 9), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUpdateCheck(t *testing.T) {
	f := newFleet(t)
	p := initFile(t, 5000)
	code, out, _ := f.cloud(t, "update", "web1", "--init", p, "--check")
	if code != exitOK || !strings.Contains(out, "web1: accepted init v9.9.9") || f.backend.switched != "" {
		t.Fatalf("cloud update --check: exit %d, stdout %q, switched %q; want 0, the node's answer, and no switch", code, out, f.backend.switched)
	}
	if f.backend.staged == nil || f.backend.staged.Size != 5000 {
		t.Errorf("staged = %+v, want the 5000-byte init", f.backend.staged)
	}
	// Again: the node has it, and nothing is sent.
	code, out, _ = f.cloud(t, "update", "web1", "--init", p, "--check")
	if code != exitOK || !strings.Contains(out, "already staged") || len(f.backend.initPuts) != 1 {
		t.Errorf("cloud update again: exit %d, %q, %d PutInit calls; want 0, already staged, and no new upload", code, out, len(f.backend.initPuts))
	}
}

// TestUpdateSwitches: without --check the node is asked to switch, and
// the command waits for it to answer with the new version.
func TestUpdateSwitches(t *testing.T) {
	f := newFleet(t)
	code, out, errOut := f.cloud(t, "update", "web1", "--init", initFile(t, 100))
	if code != exitOK || !strings.Contains(out, "web1: running init v9.9.9") || f.backend.switched == "" {
		t.Errorf("cloud update without --check: exit %d, stdout %q, stderr %q; want 0 and the node on v9.9.9", code, out, errOut)
	}
}

// TestUpdateSwitchRefused: a node that cannot switch says why, and the
// command fails with it.
func TestUpdateSwitchRefused(t *testing.T) {
	f := newFleet(t)
	f.backend.noSwitch = "re-exec in place is only in OS-container mode in this build"
	code, _, errOut := f.cloud(t, "update", "web1", "--init", initFile(t, 100))
	if code != exitFailure || !strings.Contains(errOut, f.backend.noSwitch) {
		t.Errorf("cloud update on a node that cannot switch: exit %d, stderr %q; want 1 with the reason", code, errOut)
	}
}

func TestUpdateRefused(t *testing.T) {
	f := newFleet(t)
	f.backend.refuse = "dynamically linked (it asks for the loader /lib64/ld-linux-x86-64.so.2)"
	code, _, errOut := f.cloud(t, "update", "web1", "--init", initFile(t, 100), "--check")
	if code != exitFailure || !strings.Contains(errOut, f.backend.refuse) || !strings.Contains(errOut, "web1") {
		t.Errorf("cloud update of a refused init: exit %d, stderr %q; want 1 with the node's reason", code, errOut)
	}
	if f.backend.staged != nil {
		t.Errorf("a refused init was staged: %+v", f.backend.staged)
	}
}

func TestUpdateResumes(t *testing.T) {
	f := newFleet(t)
	f.backend.dropInitAt = 3000
	code, _, _ := f.cloud(t, "update", "web1", "--init", initFile(t, 8000), "--check")
	if code != exitOK || !slices.Equal(f.backend.initPuts, []int64{0, 3000}) {
		t.Errorf("cloud update over a dropped upload: exit %d, PutInit offsets %v; want 0 and [0 3000]", code, f.backend.initPuts)
	}
}

// TestUpdateStopsAtTheFirstFailure: a node that fails ends the run, and
// the nodes after it are not touched.
func TestUpdateStopsAtTheFirstFailure(t *testing.T) {
	f := newFleet(t)
	code, _, errOut := f.cloud(t, "update", "nosuch", "web1", "--init", initFile(t, 100), "--check")
	if code == exitOK || !strings.Contains(errOut, "nosuch") || len(f.backend.initPuts) != 0 {
		t.Errorf("cloud update nosuch web1: exit %d, stderr %q, %d PutInit calls; want a failure naming nosuch and web1 untouched", code, errOut, len(f.backend.initPuts))
	}
}

func TestUpdateNeedsAnInit(t *testing.T) {
	f := newFleet(t)
	code, _, errOut := f.cloud(t, "update", "web1", "--check")
	if code != exitUsage || !strings.Contains(errOut, "--init PATH") {
		t.Errorf("cloud update without an init: exit %d, stderr %q; want 2 saying to pass --init PATH", code, errOut)
	}
	if code, _, _ := f.cloud(t, "update", "--check"); code != exitUsage {
		t.Errorf("cloud update without a NAME: exit %d, want 2", code)
	}
}
