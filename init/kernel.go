package main

import (
	"time"

	"golang.org/x/sys/unix"
)

// The seams between PID 1's sequences (boot, shutdown) and the system
// calls that change the machine, one small interface per concern; each
// function takes only the one it needs. The real kernel is sysKernel;
// tests use a recording fake. Everything that is cheap to do for real
// (reading files, bbolt, the API) stays outside them.

// mounter mounts and unmounts (the early mounts, the data root; the
// containers' roots through apps.Mounter).
type mounter interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
	Unmount(target string, flags int) error
}

// moduleLoader loads a kernel module file.
type moduleLoader interface {
	LoadModule(path string) error
}

// processes signals and counts the node's processes at shutdown.
type processes interface {
	Kill(pid int, sig unix.Signal) error
	// Processes counts the processes other than PID 1 and kernel
	// threads. kill(-1, 0) cannot tell: it succeeds on kernel threads.
	Processes() int
}

// power flushes the disks and reboots, powers off or halts.
type power interface {
	Sync()
	Reboot(cmd int) error
}

// clock sets the system clock (settimeofday).
type clock interface {
	SetClock(t time.Time) error
}

// kernel is every seam: what the node holds, and what sysKernel and the
// tests' fake implement.
type kernel interface {
	mounter
	moduleLoader
	processes
	power
	clock
}
