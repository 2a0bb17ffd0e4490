package cgroup

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const allV2 = "cpuset cpu io memory hugetlb pids rdma misc"

func TestOpenV2(t *testing.T) {
	f := newFake(t, 2, allV2)
	h := f.mustOpen("allium")
	if h.Version() != 2 {
		t.Errorf("Version() = %d, want 2", h.Version())
	}
	if h.base != "/allium" {
		t.Errorf("base = %q, want /allium", h.base)
	}
}

func TestOpenV2MissingController(t *testing.T) {
	f := newFake(t, 2, "cpuset cpu io memory")
	_, err := f.open("/allium")
	if !errors.Is(err, ErrMissingController) {
		t.Fatalf("open() = %v, want ErrMissingController", err)
	}
	want := "cgroup: open " + f.path("cgroup.controllers") + ": controller missing: no pids"
	if err.Error() != want {
		t.Errorf("open() = %q, want %q", err, want)
	}
}

func TestCreateV2(t *testing.T) {
	f := newFake(t, 2, allV2)
	h := f.mustOpen("/allium")
	if err := h.Group("containers/web").Create(); err != nil {
		t.Fatalf("Create() = %v", err)
	}
	for _, dir := range []string{"", "allium", "allium/containers"} {
		if got := f.read(dir + "/cgroup.subtree_control"); got != "cpu io memory pids\n" {
			t.Errorf("%s/cgroup.subtree_control = %q, want cpu io memory pids", dir, got)
		}
	}
	if got := f.read("allium/containers/web/cgroup.subtree_control"); got != "" {
		t.Errorf("web's cgroup.subtree_control = %q, want nothing: a leaf", got)
	}
	for _, file := range []string{"memory.max", "memory.swap.max", "pids.max", "cpu.weight", "io.stat"} {
		if _, err := os.Stat(f.path("allium/containers/web/" + file)); err != nil {
			t.Errorf("web has no %s: its parent's controllers were not enabled before mkdir", file)
		}
	}
	d, ok := h.Group("containers/web").Dir()
	if want := f.path("allium/containers/web"); d != want || !ok {
		t.Errorf("Dir() = %q, %v, want %q, true", d, ok, want)
	}
}

// A second Create, and a sibling's, write nothing: a write to the
// subtree_control of a directory with processes fails with EBUSY even
// for controllers already enabled.
func TestCreateV2Idempotent(t *testing.T) {
	f := newFake(t, 2, allV2)
	h := f.mustOpen("/allium")
	if err := h.Group("containers/web").Create(); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, dir := range []string{"", "allium", "allium/containers"} {
		os.Chtimes(f.path(dir+"/cgroup.subtree_control"), old, old)
	}
	before := f.snapshot()
	for _, name := range []string{"containers/web", "containers/db"} {
		if err := h.Group(name).Create(); err != nil {
			t.Fatalf("Create(%s) = %v", name, err)
		}
	}
	for _, dir := range []string{"", "allium", "allium/containers"} {
		if st, _ := os.Stat(f.path(dir + "/cgroup.subtree_control")); !st.ModTime().Equal(old) {
			t.Errorf("%s/cgroup.subtree_control written again", dir)
		}
	}
	for k := range changes(before, f.snapshot()) {
		if !strings.HasPrefix(k, "allium/containers/db/") {
			t.Errorf("Create again changed %s", k)
		}
	}
}

func TestCreateV2WithoutIO(t *testing.T) {
	f := newFake(t, 2, "cpu memory pids")
	h := f.mustOpen("/allium")
	if err := h.Group("node").Create(); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"", "allium"} {
		if got := f.read(dir + "/cgroup.subtree_control"); got != "cpu memory pids\n" {
			t.Errorf("%s/cgroup.subtree_control = %q, want cpu memory pids", dir, got)
		}
	}
	if got := f.read("allium/node/cgroup.subtree_control"); got != "" {
		t.Errorf("allium/node/cgroup.subtree_control = %q, want nothing: a leaf", got)
	}
}

// A base deeper than the root: its missing ancestors are made, and the
// controllers enabled from the base's parent down.
func TestCreateV2DeepBase(t *testing.T) {
	f := newFake(t, 2, allV2)
	f.write("cgroup.subtree_control", "cpu io memory pids\n")
	if err := f.mkdir(f.path("system")); err != nil {
		t.Fatal(err)
	}
	h := f.mustOpen("/system/allium")
	if err := h.Group("node").Create(); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"system", "system/allium"} {
		if got := f.read(dir + "/cgroup.subtree_control"); got != "cpu io memory pids\n" {
			t.Errorf("%s/cgroup.subtree_control = %q, want cpu io memory pids", dir, got)
		}
	}
}

func TestCreateV2NotOffered(t *testing.T) {
	f := newFake(t, 2, allV2)
	h := f.mustOpen("/allium")
	f.write("cgroup.controllers", "cpu io memory\n") // pids went after Open
	err := h.Group("containers/web").Create()
	want := "cgroup: enable " + f.path("cgroup.subtree_control") + `: controller missing: pids not offered in cgroup.controllers ("cpu io memory")`
	if !errors.Is(err, ErrMissingController) || err.Error() != want {
		t.Errorf("Create() = %v, want %q", err, want)
	}
}

func TestBadNames(t *testing.T) {
	h := newFake(t, 2, allV2).mustOpen("/allium")
	for _, name := range []string{"/web", "../web", "a/../../b", "a//b", "a/", ".", "..", "a/./b"} {
		g := h.Group(name)
		if err := g.Create(); !errors.Is(err, ErrBadName) {
			t.Errorf("Group(%q).Create() = %v, want ErrBadName", name, err)
		}
		if err := g.Set(Limits{}); !errors.Is(err, ErrBadName) {
			t.Errorf("Group(%q).Set() = %v, want ErrBadName", name, err)
		}
		if _, ok := g.Dir(); ok {
			t.Errorf("Group(%q).Dir() = _, true, want false", name)
		}
	}
}

// setWrites creates a group, sets l, and returns what changed.
func setWrites(t *testing.T, f *fake, name string, l Limits) (map[string]string, error) {
	t.Helper()
	g := f.mustOpen("/allium").Group(name)
	if err := g.Create(); err != nil {
		t.Fatal(err)
	}
	before := f.snapshot()
	err := g.Set(l)
	return changes(before, f.snapshot()), err
}

func TestSetV2(t *testing.T) {
	for _, tc := range []struct {
		name   string
		absent []string
		l      Limits
		want   map[string]string
	}{
		{"limits", nil, Limits{Memory: 256 << 20, Pids: 64, CPUWeight: 500}, map[string]string{
			"memory.max": "268435456", "memory.swap.max": "0", "pids.max": "64", "cpu.weight": "500"}},
		{"no swap accounting", []string{"memory.swap.max"}, Limits{Memory: 1 << 20, Pids: 1, CPUWeight: 1}, map[string]string{
			"memory.max": "1048576", "pids.max": "1", "cpu.weight": "1"}},
		{"zero", nil, Limits{}, map[string]string{"memory.max": "max", "memory.swap.max": "max", "pids.max": "max", "cpu.weight": "100"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, 2, allV2, tc.absent...)
			f.write("cgroup.subtree_control", "cpu io memory pids\n")
			// The kernel's files end in a newline and Set writes none,
			// so that each write shows as a change.
			got, err := setWrites(t, f, "containers/web", tc.l)
			if err != nil {
				t.Fatalf("Set(%+v) = %v", tc.l, err)
			}
			want := map[string]string{}
			for k, v := range tc.want {
				want["allium/containers/web/"+k] = v
			}
			if !maps.Equal(got, want) {
				t.Errorf("Set(%+v) wrote %v, want %v", tc.l, got, want)
			}
		})
	}
}

func TestSetBadLimits(t *testing.T) {
	g := newFake(t, 2, allV2).mustOpen("/allium").Group("web")
	for _, l := range []Limits{{Pids: -1}, {CPUWeight: -1}, {CPUWeight: 10001}} {
		if err := g.Set(l); !errors.Is(err, ErrBadLimit) {
			t.Errorf("Set(%+v) = %v, want ErrBadLimit", l, err)
		}
	}
}

func TestSetErrorNamesFileAndValue(t *testing.T) {
	f, g := newGroup(t, 2, allV2, "containers/web")
	os.Remove(f.path("allium/containers/web/memory.max"))
	err := g.Set(Limits{Memory: 256 << 20})
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Set() = %v, want ErrNotExist", err)
	}
	want := "cgroup: write " + f.path("allium/containers/web/memory.max") + ` "268435456": `
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Set() = %q, want it to start %q", err, want)
	}
}

func TestAddProcsV2(t *testing.T) {
	f, g := newGroup(t, 2, allV2, "node")
	if err := g.Add(42); err != nil {
		t.Fatalf("Add(42) = %v", err)
	}
	if got := f.read("allium/node/cgroup.procs"); got != "42" {
		t.Errorf("cgroup.procs = %q, want 42", got)
	}
	f.write("allium/node/cgroup.procs", "42\n43\n")
	if got, err := g.Procs(); err != nil || len(got) != 2 || got[0] != 42 || got[1] != 43 {
		t.Errorf("Procs() = %v, %v, want [42 43]", got, err)
	}
	f.write("allium/node/cgroup.procs", "42\nx\n")
	if _, err := g.Procs(); err == nil || !strings.Contains(err.Error(), f.path("allium/node/cgroup.procs")) {
		t.Errorf("Procs() of a bad file = %v, want an error naming it", err)
	}
}

func TestProtectV2(t *testing.T) {
	f := newFake(t, 2, allV2)
	h := f.mustOpen("/allium")
	node, containers := h.Group("node"), h.Group("containers")
	for _, g := range []*Group{node, containers, h.Group("containers/web")} {
		if err := g.Create(); err != nil {
			t.Fatal(err)
		}
	}
	before := f.snapshot()
	const total = 1 << 30
	if err := h.Protect(node, containers, total); err != nil {
		t.Fatalf("Protect() = %v", err)
	}
	want := map[string]string{
		"allium/containers/memory.max":      "966367642",
		"allium/containers/memory.swap.max": "0",
		"allium/node/memory.min":            "107374182",
		"allium/memory.min":                 "107374182",
	}
	if got := changes(before, f.snapshot()); !maps.Equal(got, want) {
		t.Errorf("Protect(node, containers, 1 GiB) wrote %v, want %v", got, want)
	}
}

func TestKillV2CgroupKill(t *testing.T) {
	f, g := newGroup(t, 2, allV2, "web")
	f.write("allium/web/cgroup.procs", "5\n6\n")
	done := make(chan error)
	go func() { done <- g.Kill() }()
	// The kernel: once "1" is in cgroup.kill, the group empties.
	for f.read("allium/web/cgroup.kill") != "1" {
		time.Sleep(time.Millisecond)
	}
	f.write("allium/web/cgroup.procs", "")
	if err := <-done; err != nil {
		t.Errorf("Kill() = %v", err)
	}
	if len(f.killed) != 0 {
		t.Errorf("Kill() sent SIGKILL to %v, want cgroup.kill alone", f.killed)
	}
}

func TestKillV2CgroupKillNeverEmpties(t *testing.T) {
	f, g := newGroup(t, 2, allV2, "web")
	f.write("allium/web/cgroup.procs", "5\n")
	if err := g.Kill(); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("Kill() = %v, want ErrNotEmpty", err)
	}
}

// Without cgroup.kill (before Linux 5.14): freeze, SIGKILL each, thaw.
func TestKillV2Freeze(t *testing.T) {
	f, g := newGroup(t, 2, allV2, "web", "cgroup.kill")
	f.write("allium/web/cgroup.procs", "5\n6\n")
	f.write("allium/web/cgroup.events", "populated 1\nfrozen 1\n")
	f.onKill = func(pid int) error {
		if got := f.read("allium/web/cgroup.freeze"); got != "1" {
			t.Errorf("SIGKILL %d with cgroup.freeze %q, want 1", pid, got)
		}
		f.leave(pid)
		return nil
	}
	if err := g.Kill(); err != nil {
		t.Fatalf("Kill() = %v", err)
	}
	if len(f.killed) != 2 || f.read("allium/web/cgroup.freeze") != "0" {
		t.Errorf("Kill() killed %v, cgroup.freeze %q; want [5 6], 0", f.killed, f.read("allium/web/cgroup.freeze"))
	}
}

func TestRemove(t *testing.T) {
	f := newFake(t, 2, allV2)
	h := f.mustOpen("/allium")
	web := h.Group("containers/web")
	if err := web.Create(); err != nil {
		t.Fatal(err)
	}
	err := h.Group("containers").Remove()
	if want := "cgroup: rmdir " + f.path("allium/containers") + ": "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Remove() of a group with a group = %v, want %q...", err, want)
	}
	f.write("allium/containers/web/cgroup.procs", "7\n")
	go func() {
		time.Sleep(20 * time.Millisecond)
		f.leave(7) // the kernel empties it a moment after Kill
	}()
	if err := web.Remove(); err != nil {
		t.Errorf("Remove() = %v, want it to wait for the group to empty", err)
	}
	if _, err := os.Stat(f.path("allium/containers/web")); !os.IsNotExist(err) {
		t.Errorf("Remove() left %s", f.path("allium/containers/web"))
	}
	if err := web.Remove(); err != nil {
		t.Errorf("Remove() again = %v, want nil", err)
	}
	if _, err := os.Stat(filepath.Join(f.root, "allium/containers")); err != nil {
		t.Errorf("Remove() of web removed its parent")
	}
}
