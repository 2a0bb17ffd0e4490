package main

import (
	"errors"
	"log/slog"
	"os/exec"
	"sync"
	"time"

	"allium/supervisor/restart"

	"golang.org/x/sys/unix"
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
type reaper struct {
	log      *slog.Logger
	mu       sync.Mutex
	children map[int]chan unix.WaitStatus
	// rootAgain gives each child real uid 0 (asRoot): set once PID 1
	// has its own real uid (guardSignals).
	rootAgain bool
}

func newReaper(log *slog.Logger) *reaper {
	return &reaper{log: log, children: map[int]chan unix.WaitStatus{}}
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
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if pid <= 0 || err != nil {
			return // ECHILD: no children; 0: none has exited
		}
		r.deliver(pid, ws)
	}
}

func (r *reaper) deliver(pid int, ws unix.WaitStatus) {
	r.mu.Lock()
	ch, ok := r.children[pid]
	delete(r.children, pid)
	r.mu.Unlock()
	if ok {
		ch <- ws
		return
	}
	r.log.Info("reaped an orphan", "pid", pid, "status", restart.ExitFrom(ws, time.Now()).String())
}

// running is the number of registered children still running.
func (r *reaper) running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.children)
}
