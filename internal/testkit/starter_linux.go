package testkit

import (
	"fmt"
	"os/exec"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"allium/internal/child"
)

// Starter stands in for PID 1's reaper in tests: a child.Starter that
// starts cmd, which dies with the test process (Pdeathsig), and
// delivers its wait status once, from cmd.Wait (a test process has no
// other waiter). It is a child.Adopter too: Adopt(pid) of a child it
// started delivers that child's status a second time, to the adopter,
// as a new init's reaper would after a handover in place (the test's
// "old" and "new" supervisors share one process). PID 1 never links it.
var Starter = &starter{exits: map[int]*exitNote{}}

// starter keeps each child's exit for its adopters.
type starter struct {
	mu    sync.Mutex
	exits map[int]*exitNote // by pid; replaced when a pid is reused
}

// exitNote is one child's exit: ws is set before done is closed.
type exitNote struct {
	done chan struct{}
	ws   unix.WaitStatus
}

var (
	_ child.Starter = Starter
	_ child.Adopter = Starter
)

func (s *starter) Start(cmd *exec.Cmd) (<-chan unix.WaitStatus, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	note := &exitNote{done: make(chan struct{})}
	s.mu.Lock()
	s.exits[cmd.Process.Pid] = note
	s.mu.Unlock()
	ch := make(chan unix.WaitStatus, 1)
	go func() {
		cmd.Wait()
		ws := unix.WaitStatus(255 << 8) // exit 255 if Wait says nothing better
		if st, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
			ws = unix.WaitStatus(st)
		}
		note.ws = ws
		close(note.done)
		ch <- ws
	}()
	return ch, nil
}

// Adopt delivers the exit of a child Start started, whether it has
// exited already or not.
func (s *starter) Adopt(pid int) (<-chan unix.WaitStatus, error) {
	s.mu.Lock()
	note := s.exits[pid]
	s.mu.Unlock()
	if note == nil {
		return nil, fmt.Errorf("testkit: adopt pid %d: %w", pid, child.ErrNotChild)
	}
	ch := make(chan unix.WaitStatus, 1)
	go func() {
		<-note.done
		ch <- note.ws
	}()
	return ch, nil
}
