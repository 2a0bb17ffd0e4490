package main

import "syscall"

// torProcAttr is how cloud starts its own tor: the kernel sends it
// SIGTERM should cloud die first, even before cloud has taken ownership
// of it on the control port.
func torProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
