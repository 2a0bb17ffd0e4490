package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"

	"allium/supervisor/restart"

	"golang.org/x/sys/unix"

	"allium/internal/child"
)

// reaper is the one caller of wait4 in PID 1. Children are started
// through it and registered under its lock; it hands each exit status to
// the child's channel and reaps orphans (processes reparented to PID 1)
// with a log line. exec.Cmd.Wait is never called: a second waiter would
// steal exit statuses from the first.
//
//	Start(cmd) ──lock──> fork ──> register pid ──unlock
//	SIGCHLD ──> reap: wait4(-1, WNOHANG) until none ──lock──> deliver or log orphan
//
// Holding the lock across fork and registration means a child that exits
// at once is still delivered to its owner: reap blocks on the lock until
// the pid is registered.
//
// After a handover in place (an execve of a new init), the old init's
// children are this one's and were started by no one here. Their pids,
// from the handover, are expected before the first reap, so that an
// exit reaped before its adoption is held, not logged as an orphan's
// and lost; Adopt then registers the pid (or hands over what was held)
// and reaps, since the SIGCHLD of a child that exited during the gap
// may be gone while the child waits as a zombie:
//
//	expect(pids) ── before the first reap
//	SIGCHLD ──> reap ──> deliver: registered ─> its channel
//	                              expected   ─> held
//	                              else       ─> "reaped an orphan"
//	Adopt(pid) ──lock──> held? deliver it : waitid(WNOWAIT): a child? register ──unlock──> reap
type reaper struct {
	log      *slog.Logger
	mu       sync.Mutex
	children map[int]chan unix.WaitStatus
	expected map[int]bool            // pids of a handover, not yet adopted
	held     map[int]unix.WaitStatus // exits of expected pids, reaped before Adopt
	// rootAgain gives each child real uid 0 (asRoot): set once PID 1
	// has its own real uid (guardSignals).
	rootAgain bool
	// paused stops reaping before a handover (pause): exits wait as
	// zombies for the next init.
	paused bool
}

func newReaper(log *slog.Logger) *reaper {
	return &reaper{log: log, children: map[int]chan unix.WaitStatus{},
		expected: map[int]bool{}, held: map[int]unix.WaitStatus{}}
}

// Start starts cmd and returns a channel that receives its exit status
// once. cmd's standard streams must be nil or *os.File: with anything
// else os/exec starts copying goroutines that only Wait would collect.
func (r *reaper) Start(cmd *exec.Cmd) (<-chan unix.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rootAgain {
		asRoot(cmd)
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ch := make(chan unix.WaitStatus, 1)
	r.children[cmd.Process.Pid] = ch
	// Not cmd.Process.Release: it sets Pid to -1, and a caller that
	// later kills "its child" would kill(-1), every process there is.
	// The pidfd is closed by os's cleanup once cmd is unreachable.
	return ch, nil
}

// reap collects every child that has exited. Signals coalesce, so one
// SIGCHLD may stand for many exits: loop until there is none left.
func (r *reaper) reap() {
	for r.reapOne() {
	}
}

// reapOne reaps one exited child and delivers its status, under the
// lock (wait4 with WNOHANG does not block), so that Adopt never sees a
// child reaped but not yet delivered. It reports whether it reaped one.
func (r *reaper) reapOne() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for !r.paused {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if pid <= 0 || err != nil {
			return false // ECHILD: no children; 0: none has exited
		}
		r.deliver(pid, ws)
		return true
	}
	return false
}

// pause stops reaping: once it returns no wait4 runs, and none will
// until resume. A handover pauses before the supervisor's Freeze, so
// that every exit from then on is the next init's to reap.
func (r *reaper) pause() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.paused = true
}

// resume undoes pause, and reaps what exited meanwhile.
func (r *reaper) resume() {
	r.mu.Lock()
	r.paused = false
	r.mu.Unlock()
	r.reap()
}

// deliver hands ws to pid's owner; r.mu is held. The channels have
// room for the one status.
func (r *reaper) deliver(pid int, ws unix.WaitStatus) {
	if ch, ok := r.children[pid]; ok {
		delete(r.children, pid)
		ch <- ws
		return
	}
	if r.expected[pid] {
		delete(r.expected, pid)
		r.held[pid] = ws
		return
	}
	r.log.Info("reaped an orphan", "pid", pid, "status", restart.ExitFrom(ws, time.Now()).String())
}

// expect marks the pids a handover names as children to be adopted:
// call it before the first reap. Until Adopt, their exits are held.
func (r *reaper) expect(pids ...int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, pid := range pids {
		r.expected[pid] = true
	}
}

// Adopt takes over the waiting on pid, a child this process did not
// start through the reaper (child.Adopter): the wait status comes on the
// channel once, even when the child exited before (held, or a zombie).
func (r *reaper) Adopt(pid int) (<-chan unix.WaitStatus, error) {
	ch := make(chan unix.WaitStatus, 1)
	r.mu.Lock()
	if ws, ok := r.held[pid]; ok {
		delete(r.held, pid)
		r.mu.Unlock()
		ch <- ws
		return ch, nil
	}
	if _, ok := r.children[pid]; ok || pid <= 1 {
		r.mu.Unlock()
		return nil, fmt.Errorf("reaper: adopt pid %d: already waited for, or not a child's pid", pid)
	}
	// Is it a child, running or a zombie? WNOWAIT leaves it unreaped:
	// the reap below reaps it, through deliver, as every child.
	var info unix.Siginfo
	err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	for errors.Is(err, unix.EINTR) {
		err = unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	}
	if err != nil {
		r.mu.Unlock()
		if errors.Is(err, unix.ECHILD) {
			return nil, fmt.Errorf("reaper: adopt pid %d: %w", pid, child.ErrNotChild)
		}
		return nil, fmt.Errorf("reaper: adopt pid %d: %w", pid, os.NewSyscallError("waitid", err))
	}
	r.children[pid] = ch
	delete(r.expected, pid)
	zombie := info.Signo != 0 // Linux zeroes info when no child has exited
	r.mu.Unlock()
	if zombie {
		r.reap()
	}
	return ch, nil
}

// running is the number of registered children still running.
func (r *reaper) running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.children)
}
