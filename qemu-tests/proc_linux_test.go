package qemutests

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes the kernel kill cmd when this test process dies, so a
// QEMU outlives neither a test timeout's panic nor a Ctrl-C, which skip
// t.Cleanup. mkimage qemu execs QEMU, and the setting survives the exec.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
