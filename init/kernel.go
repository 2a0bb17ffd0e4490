package main

import (
	"time"

	"golang.org/x/sys/unix"
)

// kernel is the seam between PID 1's sequences (boot, shutdown) and the
// system calls that change the machine. The real one is sysKernel; tests
// use a recording fake. Everything that is cheap to do for real (reading
// files, bbolt, the API) stays outside it.
type kernel interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
	Unmount(target string, flags int) error
	LoadModule(path string) error
	Kill(pid int, sig unix.Signal) error
	// Processes counts the processes other than PID 1 and kernel
	// threads. kill(-1, 0) cannot tell: it succeeds on kernel threads.
	Processes() int
	Sync()
	Reboot(cmd int) error
	// SetClock sets the system clock (settimeofday).
	SetClock(t time.Time) error
}
