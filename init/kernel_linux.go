package main

import (
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// sysKernel is the real kernel.
type sysKernel struct{}

func (sysKernel) Mount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return &os.PathError{Op: "mount " + fstype, Path: target, Err: err}
	}
	return nil
}

func (sysKernel) Unmount(target string, flags int) error {
	if err := unix.Unmount(target, flags); err != nil {
		return &os.PathError{Op: "unmount", Path: target, Err: err}
	}
	return nil
}

// LoadModule loads a module file with finit_module. A compressed module
// (.ko.xz, .ko.zst, .ko.gz) is handed to the kernel to decompress, which
// needs CONFIG_MODULE_DECOMPRESS.
func (sysKernel) LoadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	if !strings.HasSuffix(path, ".ko") {
		flags = unix.MODULE_INIT_COMPRESSED_FILE
	}
	if err := unix.FinitModule(int(f.Fd()), "", flags); err != nil {
		return &os.PathError{Op: "finit_module", Path: path, Err: err}
	}
	return nil
}

func (sysKernel) Kill(pid int, sig unix.Signal) error {
	return os.NewSyscallError("kill", unix.Kill(pid, sig))
}

func (sysKernel) Sync() { unix.Sync() }

func (sysKernel) Reboot(cmd int) error {
	return os.NewSyscallError("reboot", unix.Reboot(cmd))
}
