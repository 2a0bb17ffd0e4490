package imagestore

import (
	"fmt"
	"syscall"
	"unsafe"

	"allium/manifest"

	"golang.org/x/sys/unix"
)

func helperSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// keptCaps are what writing a tree as root needs: chown, write and
// chmod files whatever their owner and mode, keep setgid bits, and make
// device nodes.
var keptCaps = []uintptr{unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_FOWNER, unix.CAP_FSETID, unix.CAP_MKNOD}

// helperNoFile is the helper's RLIMIT_NOFILE: stdio, the root, the
// directory cache (maxCachedDirs), a file, and the runtime's own few.
const helperNoFile = 128

// confineHelper confines the helper for good, as root, and returns the
// staging directory as it now sees it ("/"). Capabilities and
// no_new_privs are per thread: they are set on every thread of the
// runtime (syscall.AllThreadsSyscall); a cgo binary cannot do that, and
// then only the calling thread is confined, which the caller has locked
// and on which Unpack writes every file.
func confineHelper(dst string, lim Limits) (string, error) {
	if err := unix.Chroot(dst); err != nil {
		return "", fmt.Errorf("imagestore: unpack helper: chroot %s: %w", dst, err)
	}
	if err := unix.Chdir("/"); err != nil {
		return "", fmt.Errorf("imagestore: unpack helper: chdir /: %w", err)
	}
	fsize := uint64(max(lim.MaxBytes, manifest.MaxSize))
	for _, rl := range []struct {
		res int
		max uint64
	}{{unix.RLIMIT_FSIZE, fsize}, {unix.RLIMIT_NOFILE, helperNoFile}} {
		if err := unix.Setrlimit(rl.res, &unix.Rlimit{Cur: rl.max, Max: rl.max}); err != nil {
			return "", fmt.Errorf("imagestore: unpack helper: setrlimit %d: %w", rl.res, err)
		}
	}
	if err := allThreads(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); err != nil {
		return "", fmt.Errorf("imagestore: unpack helper: no_new_privs: %w", err)
	}
	if err := dropCaps(); err != nil {
		return "", fmt.Errorf("imagestore: unpack helper: %w", err)
	}
	return "/", nil
}

// dropCaps drops every capability but keptCaps from the bounding set
// (until the kernel says there are no more), clears the ambient set,
// and keeps only keptCaps permitted and effective.
func dropCaps() error {
	var mask uint64
	for _, c := range keptCaps {
		mask |= 1 << c
	}
	for c := uintptr(0); c < 64; c++ {
		if mask&(1<<c) != 0 {
			continue
		}
		err := allThreads(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, c, 0)
		if err == unix.EINVAL {
			break // past the kernel's last capability
		}
		if err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	// EINVAL: a kernel before 4.3 has no ambient set.
	if err := allThreads(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("clear the ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(mask), Permitted: uint32(mask)},
		{Effective: uint32(mask >> 32), Permitted: uint32(mask >> 32)},
	}
	err := allThreads(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	if err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

// allThreads makes a system call on every thread of the runtime, or,
// in a cgo binary, on the calling thread only. Pointers converted to
// uintptr in its arguments stay put and alive for the call.
//
//go:uintptrescapes
func allThreads(trap, a1, a2, a3 uintptr) error {
	_, _, errno := syscall.AllThreadsSyscall(trap, a1, a2, a3)
	if errno == syscall.ENOTSUP {
		_, _, errno = syscall.RawSyscall(trap, a1, a2, a3)
	}
	if errno != 0 {
		return errno
	}
	return nil
}
