//go:build !linux

package main

import "syscall"

// torProcAttr is nil off Linux, which alone has Pdeathsig. Cloud's tor
// still ends with cloud: close halts it on the control port (bine kills
// it if that fails); should cloud die instead, the kernel closes the
// control connection on which connect took ownership, and tor exits;
// and before that, ownTorrc names cloud as __OwningControllerProcess,
// which tor polls.
func torProcAttr() *syscall.SysProcAttr { return nil }
