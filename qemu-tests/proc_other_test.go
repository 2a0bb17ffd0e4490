//go:build !linux

package qemutests

import "os/exec"

// dieWithTest is a no-op where there is no PR_SET_PDEATHSIG; t.Cleanup
// still kills QEMU.
func dieWithTest(*exec.Cmd) {}
