package supervisor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"allium/internal/testkit"
	"allium/supervisor/cgroup"
	"allium/supervisor/idmap"
	"allium/supervisor/isolation"
	"allium/supervisor/restart"
)

// cgroupHarness is a root harness whose supervisor gives containers a
// cgroup below a base of the test's own, removed at the end.
func cgroupHarness(t *testing.T) (*rootHarness, *cgroup.Hierarchy) {
	testkit.NeedRoot(t)
	h := newRootHarness(t)
	base := fmt.Sprintf("/allium-sup-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-"))
	cg, err := cgroup.Open("/sys/fs/cgroup", base)
	if err != nil {
		t.Skipf("root tier: no usable cgroup hierarchy here: %v", err)
	}
	h.sup.UseCgroups(cg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), rootWait)
		defer cancel()
		for _, st := range h.sup.List() {
			h.sup.Remove(ctx, st.Name)
		}
		for _, g := range []string{"containers", ""} {
			if err := cg.Group(g).Remove(); err != nil {
				t.Errorf("leaving cgroup %s%s behind: %v", base, g, err)
			}
		}
	})
	return h, cg
}

// A fork bomb stops at the container's pids max, and removing the
// container kills all of it and removes its group: at the chroot rung,
// and at the top rung, whose shim joins its group (on v1) from inside a
// user namespace.
func TestRootCgroupPidsMax(t *testing.T) {
	for _, rung := range []isolation.Rung{isolation.Chroot, isolation.Cgroups} {
		t.Run(rung.String(), func(t *testing.T) { pidsMax(t, rung) })
	}
}

func pidsMax(t *testing.T, rung isolation.Rung) {
	h, cg := cgroupHarness(t)
	root, logs := busyboxRoot(t), t.TempDir()
	// sh's background jobs read /dev/null, which the shim makes in /dev.
	os.Mkdir(filepath.Join(root, "dev"), 0o755)
	spec := Spec{Name: "forks", Root: root, LogDir: logs, Limits: cgroup.Limits{Pids: 24}, Rung: rung,
		// busybox sh exits when a fork fails: the bomb is a subshell,
		// and the workload's shell goes on.
		Command: []string{"sh", "-c", `(i=0; while [ $i -lt 60 ]; do sleep 1000 & i=$((i+1)); done); echo done forking; sleep 1000`}}
	if rung >= isolation.Userns {
		spec.IDs = idmap.Range{Base: idmap.First + 11*idmap.Size, Size: idmap.Size}
		usernsReady(t, h, root, spec.IDs)
	}
	h.add(spec)
	waitLog(t, logs, "done forking")
	for _, ev := range h.all() {
		if ev.Type == EventError {
			t.Errorf("event %s: %s; want none (the shim joins its group)", ev.Type, ev.Message)
		}
	}
	g := cg.Group("containers/forks")
	if st, ok, err := h.sup.Stats("forks"); !ok || err != nil || st.Pids == 0 {
		t.Errorf("Supervisor.Stats(forks) = %+v, %v, %v; want the group's", st, ok, err)
	}
	if st, ok, err := h.sup.Stats("nosuch"); ok || err != nil {
		t.Errorf("Supervisor.Stats(nosuch) = %+v, %v, %v; want no group and no error", st, ok, err)
	}
	st, err := g.Stats()
	if err != nil || st.Pids > 24 || st.Pids < 10 {
		t.Errorf("the group's stats = %+v, %v; want 10 to 24 pids (max 24)", st, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), rootWait)
	defer cancel()
	if err := h.sup.Remove(ctx, "forks"); err != nil {
		t.Fatal(err)
	}
	if procs, err := g.Procs(); len(procs) != 0 || err == nil {
		t.Errorf("the group after Remove: procs %v, %v; want it gone", procs, err)
	}
}

// A memory hog is OOM-killed inside its cgroup, and the exit says so.
func TestRootCgroupOOM(t *testing.T) {
	h, _ := cgroupHarness(t)
	root, logs := busyboxRoot(t), t.TempDir()
	h.add(Spec{Name: "hog", Root: root, LogDir: logs, Limits: cgroup.Limits{Memory: 16 << 20},
		Policy:  restart.Policy{Mode: "never"},
		Command: []string{"sh", "-c", `echo eating; x=$(busybox yes | busybox head -c 67108864); echo survived`}})
	h.waitFor(EventOOM, 1)
	exits := h.waitFor(EventExit, 1)
	ex := exits[0].Exit
	if ex == nil || !ex.OOM || ex.Signal != "SIGKILL" {
		t.Errorf("the hog's exit = %+v, want an OOM kill", ex)
	}
	if ex != nil && !strings.HasPrefix(ex.String(), "oom") {
		t.Errorf("Exit.String() = %q, want it to start with oom", ex.String())
	}
	if lines := waitLog(t, logs, "eating"); strings.Contains(strings.Join(lines, "\n"), "survived") {
		t.Errorf("the hog survived: %q", lines)
	}
}
