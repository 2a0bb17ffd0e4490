package testkit

import (
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"

	"allium/internal/child"
)

// Starter stands in for PID 1's reaper in tests: a child.Starter that
// starts cmd, which dies with the test process (Pdeathsig), and
// delivers its wait status once, from cmd.Wait (a test process has no
// other waiter). PID 1 never links it.
var Starter child.Starter = child.StarterFunc(start)

func start(cmd *exec.Cmd) (<-chan unix.WaitStatus, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ch := make(chan unix.WaitStatus, 1)
	go func() {
		cmd.Wait()
		ws := unix.WaitStatus(255 << 8) // exit 255 if Wait says nothing better
		if st, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
			ws = unix.WaitStatus(st)
		}
		ch <- ws
	}()
	return ch, nil
}
