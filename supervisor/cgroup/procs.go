package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Add moves a process into the group: its pid to cgroup.procs in each
// hierarchy.
func (g *Group) Add(pid int) error {
	if g.err != nil {
		return g.err
	}
	for _, d := range g.dirs() {
		if err := writeFile(d+"/cgroup.procs", strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

// Procs are the processes in the group (on v1, in its memory
// hierarchy; Add puts a process in all).
func (g *Group) Procs() ([]int, error) {
	if g.err != nil {
		return nil, g.err
	}
	file, _ := g.file("cgroup.procs")
	s, err := readFile(file)
	if err != nil {
		return nil, err
	}
	pids, err := parseProcs(s)
	if err != nil {
		return nil, &Error{Op: "read", Path: file, Err: err}
	}
	return pids, nil
}

// killRounds bounds Kill's rounds of SIGKILLs.
const killRounds = 10

// Kill kills every process in the group and waits until it is empty.
// On v2 with cgroup.kill (Linux 5.14) the kernel does it in one write.
// Otherwise, and on v1, each round freezes the group (cgroup.freeze, or
// v1's freezer where mounted) so that no process forks meanwhile, sends
// SIGKILL to each pid in cgroup.procs, thaws it (a frozen process dies
// only once thawed on v1) and waits for it to empty; without a freezer
// a fork bomb may need a few rounds. After killRounds rounds it gives
// up with ErrNotEmpty.
func (g *Group) Kill() error {
	if g.err != nil {
		return g.err
	}
	if file, _ := g.file("cgroup.kill"); g.h.version == 2 && exists(file) {
		if err := writeFile(file, "1"); err != nil {
			return err
		}
		return g.waitEmpty()
	}
	for range killRounds {
		if err := g.killRound(); err != nil {
			return err
		}
		if g.waitEmpty() == nil {
			return nil
		}
	}
	left, _ := g.Procs()
	return fmt.Errorf("cgroup: kill %s: %d processes left after %d rounds of SIGKILL: %w", g.name, len(left), killRounds, ErrNotEmpty)
}

// killRound freezes the group, sends SIGKILL to each of its processes,
// and thaws it.
func (g *Group) killRound() error {
	f := g.freezer()
	if err := f.set(true); err != nil {
		return err
	}
	pids, err := g.Procs()
	for _, pid := range pids {
		// ESRCH: it died meanwhile, which is what we want.
		if kerr := g.h.kill(pid); kerr != nil && !errors.Is(kerr, syscall.ESRCH) && err == nil {
			err = &Error{Op: "kill", Path: strconv.Itoa(pid), Err: kerr}
		}
	}
	if terr := f.set(false); err == nil {
		err = terr
	}
	return err
}

// waitEmpty waits, up to the kernel's settle time, until the group has
// no process.
func (g *Group) waitEmpty() error {
	ok, err := g.h.until(func() (bool, error) {
		pids, err := g.Procs()
		return len(pids) == 0, err
	})
	if err == nil && !ok {
		err = ErrNotEmpty
	}
	return err
}

// until polls done until it is true or fails, for up to the settle
// time; false when time ran out.
func (h *Hierarchy) until(done func() (bool, error)) (bool, error) {
	deadline := time.Now().Add(h.settle)
	for {
		ok, err := done()
		if ok || err != nil {
			return ok, err
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		time.Sleep(h.poll)
	}
}

// freezer is a group's freezer: v2's cgroup.freeze, v1's freezer.state,
// or none (file "").
type freezer struct {
	g                    *Group
	file, frozen, thawed string
}

func (g *Group) freezer() freezer {
	if g.h.version == 2 {
		if file, _ := g.file("cgroup.freeze"); exists(file) {
			return freezer{g, file, "1", "0"}
		}
		return freezer{}
	}
	if file, ok := g.file("freezer.state"); ok && exists(file) {
		return freezer{g, file, "FROZEN", "THAWED"}
	}
	return freezer{}
}

// set freezes or thaws the group. Freezing waits, up to the settle
// time, for every process to be frozen; one that is not (it sleeps in
// the kernel, uninterruptibly) is killed unfrozen, and the next round
// of Kill catches what it forked.
func (f freezer) set(frozen bool) error {
	if f.file == "" {
		return nil
	}
	if !frozen {
		return writeFile(f.file, f.thawed)
	}
	if err := writeFile(f.file, f.frozen); err != nil {
		return err
	}
	_, err := f.g.h.until(f.isFrozen)
	return err
}

// isFrozen reads v2's cgroup.events "frozen 1" or v1's freezer.state
// "FROZEN".
func (f freezer) isFrozen() (bool, error) {
	if f.g.h.version == 1 {
		s, err := readFile(f.file)
		return strings.TrimSpace(s) == "FROZEN", err
	}
	file, _ := f.g.file("cgroup.events")
	s, err := readFile(file)
	if err != nil {
		return false, err
	}
	n, _ := parseKeyed(s, "frozen")
	return n == 1, nil
}

// Remove removes the group's directory in each hierarchy. The group must
// hold no process and no group: while rmdir fails with EBUSY (after
// Kill the kernel takes a moment to empty it) Remove tries again, up to
// the settle time. A group already gone is fine.
func (g *Group) Remove() error {
	if g.err != nil {
		return g.err
	}
	for _, d := range g.dirs() {
		if err := g.h.removeDir(d); err != nil {
			return err
		}
	}
	return nil
}

func (h *Hierarchy) removeDir(dir string) error {
	var err error
	h.until(func() (bool, error) {
		err = h.rmdir(dir)
		return !errors.Is(err, syscall.EBUSY), nil
	})
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return &Error{Op: "rmdir", Path: dir, Err: unwrapPath(err)}
}
