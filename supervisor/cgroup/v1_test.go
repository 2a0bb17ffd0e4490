package cgroup

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

const allV1 = "memory pids cpu cpuacct blkio freezer"

func TestOpenV1(t *testing.T) {
	f := newFake(t, 1, allV1)
	h := f.mustOpen("/allium")
	if h.Version() != 1 {
		t.Errorf("Version() = %d, want 1", h.Version())
	}
	if len(h.dirs) != 6 {
		t.Errorf("dirs = %v, want the six hierarchies", h.dirs)
	}
	if _, ok := h.Group("web").Dir(); ok {
		t.Errorf("Dir() on v1 = _, true, want false")
	}
}

func TestOpenV1Missing(t *testing.T) {
	f := newFake(t, 1, "memory cpu cpuacct")
	_, err := f.open("/allium")
	want := "cgroup: open " + f.path("pids") + ": controller missing: no cgroup v1 pids hierarchy"
	if !errors.Is(err, ErrMissingController) || err.Error() != want {
		t.Errorf("open() = %v, want %q", err, want)
	}
}

// cpu and cpuacct mounted as one hierarchy, linked from both names
// (systemd's layout): one directory for both.
func TestCreateV1Comounted(t *testing.T) {
	f := newFake(t, 1, "memory pids cpu,cpuacct")
	h := f.mustOpen("/allium")
	if len(h.dirs) != 3 {
		t.Errorf("dirs = %v, want memory, pids, cpu", h.dirs)
	}
	g := h.Group("containers/web")
	if err := g.Create(); err != nil {
		t.Fatalf("Create() = %v", err)
	}
	snap := f.snapshot()
	for _, file := range []string{"memory/allium/containers/web/memory.limit_in_bytes", "pids/allium/containers/web/pids.max",
		"cpu,cpuacct/allium/containers/web/cpu.shares", "cpu,cpuacct/allium/containers/web/cpuacct.usage"} {
		if _, ok := snap[file]; !ok {
			t.Errorf("Create() made no %s", file)
		}
	}
	s, err := g.Stats()
	if err != nil || s.IORead != 0 || s.IOWrite != 0 {
		t.Errorf("Stats() without blkio = %+v, %v; want no I/O and no error", s, err)
	}
}

func TestSetV1(t *testing.T) {
	for _, tc := range []struct {
		name   string
		absent []string
		l      Limits
		want   map[string]string
	}{
		{"limits", nil, Limits{Memory: 256 << 20, Pids: 64, CPUWeight: 500}, map[string]string{
			"memory/allium/web/memory.limit_in_bytes": "268435456", "memory/allium/web/memory.memsw.limit_in_bytes": "268435456",
			"pids/allium/web/pids.max": "64", "cpu/allium/web/cpu.shares": "5120"}},
		{"no swap accounting", []string{"memory.memsw.limit_in_bytes"}, Limits{Memory: 1 << 20, Pids: 1, CPUWeight: 1}, map[string]string{
			"memory/allium/web/memory.limit_in_bytes": "1048576", "pids/allium/web/pids.max": "1", "cpu/allium/web/cpu.shares": "10"}},
		{"zero", nil, Limits{}, map[string]string{
			"memory/allium/web/memory.limit_in_bytes": "-1", "memory/allium/web/memory.memsw.limit_in_bytes": "-1",
			"pids/allium/web/pids.max": "max", "cpu/allium/web/cpu.shares": "1024"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := setWrites(t, newFake(t, 1, allV1, tc.absent...), "web", tc.l)
			if err != nil {
				t.Fatalf("Set(%+v) = %v", tc.l, err)
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("Set(%+v) wrote %v, want %v", tc.l, got, tc.want)
			}
		})
	}
}

// v1 refuses a memsw limit below the memory limit (EINVAL): a cut
// writes memory.limit_in_bytes first, a raise memsw first.
func TestMemoryV1Order(t *testing.T) {
	f, g := newGroup(t, 1, allV1, "web")
	f.write("memory/allium/web/memory.limit_in_bytes", "134217728\n")
	for _, tc := range []struct {
		m     uint64
		first string
	}{{64 << 20, "memory.limit_in_bytes"}, {128 << 20, "memory.limit_in_bytes"}, {256 << 20, "memory.memsw.limit_in_bytes"}, {0, "memory.memsw.limit_in_bytes"}} {
		if ws := g.memoryV1(tc.m); ws[0].file != tc.first {
			t.Errorf("memoryV1(%d) from 128 MiB writes %s first, want %s", tc.m, ws[0].file, tc.first)
		}
	}
}

func TestCPUShares(t *testing.T) {
	for w, want := range map[int]string{0: "1024", 1: "10", 100: "1024", 500: "5120", 10000: "102400"} {
		f, g := newGroup(t, 1, allV1, "web")
		if err := g.Set(Limits{CPUWeight: w}); err != nil {
			t.Fatal(err)
		}
		if got := f.read("cpu/allium/web/cpu.shares"); got != want {
			t.Errorf("Set(CPUWeight %d): cpu.shares = %s, want %s", w, got, want)
		}
	}
}

func TestAddV1(t *testing.T) {
	f, g := newGroup(t, 1, allV1, "node")
	before := f.snapshot()
	if err := g.Add(42); err != nil {
		t.Fatalf("Add(42) = %v", err)
	}
	want := map[string]string{}
	for _, m := range strings.Fields(allV1) {
		want[m+"/allium/node/cgroup.procs"] = "42"
	}
	if got := changes(before, f.snapshot()); !maps.Equal(got, want) {
		t.Errorf("Add(42) wrote %v, want %v", got, want)
	}
}

func TestProtectV1(t *testing.T) {
	f := newFake(t, 1, allV1)
	h := f.mustOpen("/allium")
	node, containers := h.Group("node"), h.Group("containers")
	for _, g := range []*Group{node, containers} {
		if err := g.Create(); err != nil {
			t.Fatal(err)
		}
	}
	before := f.snapshot()
	if err := h.Protect(node, containers, 1<<30); err != nil {
		t.Fatalf("Protect() = %v", err)
	}
	want := map[string]string{
		"memory/allium/containers/memory.limit_in_bytes":       "966367642",
		"memory/allium/containers/memory.memsw.limit_in_bytes": "966367642",
	}
	if got := changes(before, f.snapshot()); !maps.Equal(got, want) {
		t.Errorf("Protect(node, containers, 1 GiB) wrote %v, want %v", got, want)
	}
}

// killFake makes a group with pids in it on a v1 fake.
func killFake(t *testing.T, offered string) (*fake, *Group) {
	f, g := newGroup(t, 1, offered, "web")
	f.write("memory/allium/web/cgroup.procs", "5\n6\n")
	return f, g
}

func TestKillV1Freezer(t *testing.T) {
	f, g := killFake(t, allV1)
	f.onKill = func(pid int) error {
		if got := f.read("freezer/allium/web/freezer.state"); got != "FROZEN" {
			t.Errorf("SIGKILL %d with freezer.state %q, want FROZEN", pid, got)
		}
		f.leave(pid)
		return nil
	}
	if err := g.Kill(); err != nil {
		t.Fatalf("Kill() = %v", err)
	}
	if got := f.read("freezer/allium/web/freezer.state"); len(f.killed) != 2 || got != "THAWED" {
		t.Errorf("Kill() killed %v, freezer.state %q; want [5 6], THAWED", f.killed, got)
	}
}

// Without a freezer a fork bomb may outrun a round: the next round
// kills what it forked.
func TestKillV1Rounds(t *testing.T) {
	f, g := killFake(t, "memory pids cpu cpuacct")
	forked := false
	f.onKill = func(pid int) error {
		f.leave(pid)
		if !forked {
			forked = true
			f.write("memory/allium/web/cgroup.procs", "7\n")
		}
		return nil
	}
	if err := g.Kill(); err != nil {
		t.Fatalf("Kill() = %v", err)
	}
	if len(f.killed) != 3 || f.killed[2] != 7 {
		t.Errorf("Kill() killed %v, want 5, 6, then 7", f.killed)
	}
}

func TestKillV1Bounded(t *testing.T) {
	f, g := killFake(t, allV1)
	f.onKill = func(int) error { return nil } // a process that does not die
	g.h.settle = 0
	err := g.Kill()
	if !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "2 processes left after 10 rounds") {
		t.Errorf("Kill() = %v, want ErrNotEmpty after 10 rounds", err)
	}
	if len(f.killed) != 2*killRounds {
		t.Errorf("Kill() sent %d SIGKILLs, want %d", len(f.killed), 2*killRounds)
	}
}

func TestKillV1Errors(t *testing.T) {
	f, g := killFake(t, allV1)
	f.onKill = func(pid int) error {
		f.leave(pid)
		if pid == 5 {
			return errEPERM
		}
		return errESRCH // it died meanwhile: fine
	}
	err := g.Kill()
	if !errors.Is(err, errEPERM) || !strings.HasPrefix(err.Error(), "cgroup: kill 5: ") {
		t.Errorf("Kill() = %v, want kill 5: EPERM", err)
	}
	if got := f.read("freezer/allium/web/freezer.state"); got != "THAWED" {
		t.Errorf("after a failed Kill freezer.state = %q, want THAWED", got)
	}
}
