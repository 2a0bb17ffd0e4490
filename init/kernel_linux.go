package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"time"

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

// pfKthread is PF_KTHREAD, the flag of a kernel thread in /proc/PID/stat.
const pfKthread = 0x00200000

func (sysKernel) Processes() int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 1 || pid == os.Getpid() {
			continue
		}
		if flags, ok := procFlags(pid); ok && flags&pfKthread == 0 {
			n++
		}
	}
	return n
}

// procFlags reads the flags field of /proc/PID/stat. The command name
// may hold spaces and parentheses, so fields are counted after the last
// ')'.
func procFlags(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 7 {
		return 0, false
	}
	flags, err := strconv.ParseUint(f[6], 10, 64)
	return flags, err == nil
}

func (sysKernel) Sync() { unix.Sync() }

func (sysKernel) SetClock(t time.Time) error {
	tv := unix.NsecToTimeval(t.UnixNano())
	return os.NewSyscallError("settimeofday", unix.Settimeofday(&tv))
}

func (sysKernel) Reboot(cmd int) error {
	return os.NewSyscallError("reboot", unix.Reboot(cmd))
}
