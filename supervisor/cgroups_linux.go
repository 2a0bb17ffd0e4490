package supervisor

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"

	"allium/supervisor/cgroup"
	"allium/supervisor/isolation"
)

// The cgroup of a container: containers/NAME below the node's base,
// made with the spec's limits before each start. The shim is started
// in it (clone3 into the group's directory on v2, so that nothing runs
// outside it even for a moment; added right after the start on v1), and
// every process left in it is killed when a run ends. Without
// UseCgroups, containers run without one.

// cgroupFor makes (or reuses) the container's group and sets its
// limits. It returns nil when the node has no cgroups.
func (c *container) cgroupFor() (*cgroup.Group, error) {
	h := c.sup.hierarchy()
	if h == nil {
		return nil, nil
	}
	g := h.Group("containers/" + c.spec.Name)
	if err := g.Create(); err != nil {
		return nil, err
	}
	if err := g.Set(c.spec.Limits); err != nil {
		return nil, err
	}
	return g, nil
}

// startIn starts cmd in g: straight into it where the kernel can
// (clone3 with CLONE_INTO_CGROUP), else it adds the pid once started.
func (c *container) startIn(g *cgroup.Group, cmd *exec.Cmd, start func() error) error {
	if g == nil {
		return start()
	}
	dir, ok := g.Dir()
	if !ok {
		if err := start(); err != nil {
			return err
		}
		if err := g.Add(cmd.Process.Pid); err != nil {
			c.emit(Event{Type: EventError, Message: err.Error() + "; this run has no cgroup limits"})
		}
		return nil
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &cgroup.Error{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
	return start()
}

// ownProcs gives a shim in a user namespace the right to join its
// cgroups on v1: their cgroup.procs files are owned by the container's
// root. Writing them moves a process within the container's own groups
// only; its limits stay root's.
func ownProcs(spec Spec) error {
	if spec.Rung < isolation.Userns {
		return nil
	}
	for _, f := range spec.CgroupProcs {
		if err := os.Chown(f, int(spec.IDs.Base), int(spec.IDs.Base)); err != nil {
			return &cgroup.Error{Op: "chown", Path: f, Err: err}
		}
	}
	return nil
}

// Stats reads what the named container's cgroup uses now; false when
// the supervisor has no cgroups or the container has no group yet.
func (s *Supervisor) Stats(name string) (cgroup.Stats, bool, error) {
	h := s.hierarchy()
	if h == nil {
		return cgroup.Stats{}, false, nil
	}
	st, err := h.Group("containers/" + name).Stats()
	if errors.Is(err, fs.ErrNotExist) {
		return cgroup.Stats{}, false, nil
	}
	return st, err == nil, err
}

// oomKills is the group's count of OOM kills; 0 without a group.
func oomKills(g *cgroup.Group) uint64 {
	if g == nil {
		return 0
	}
	st, err := g.Stats()
	if err != nil {
		return 0
	}
	return st.OOMKills
}
