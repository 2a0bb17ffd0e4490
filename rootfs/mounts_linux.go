package rootfs

import "golang.org/x/sys/unix"

// Mount is one entry of the early mount table.
type Mount struct {
	Source string
	Target string
	FSType string
	Flags  uintptr
	Data   string
	// Optional marks a filesystem the kernel may lack (cgroup2 on an old
	// kernel): failing to mount it is reported, not a warning.
	Optional bool
}

const (
	nosuid = unix.MS_NOSUID
	nodev  = unix.MS_NODEV
	noexec = unix.MS_NOEXEC
)

// Mounts is the early mount table, in order. Unmounting runs it in reverse.
var Mounts = []Mount{
	{Source: "proc", Target: "/proc", FSType: "proc", Flags: nosuid | nodev | noexec},
	{Source: "sysfs", Target: "/sys", FSType: "sysfs", Flags: nosuid | nodev | noexec},
	{Source: "devtmpfs", Target: "/dev", FSType: "devtmpfs", Flags: nosuid, Data: "mode=0755"},
	{Source: "devpts", Target: "/dev/pts", FSType: "devpts", Flags: nosuid | noexec, Data: "gid=5,mode=0620,ptmxmode=0666"},
	{Source: "tmpfs", Target: "/dev/shm", FSType: "tmpfs", Flags: nosuid | nodev, Data: "mode=1777"},
	{Source: "tmpfs", Target: "/run", FSType: "tmpfs", Flags: nosuid | nodev, Data: "mode=0755"},
	{Source: "tmpfs", Target: "/tmp", FSType: "tmpfs", Flags: nosuid | nodev, Data: "mode=1777"},
	{Source: "cgroup2", Target: "/sys/fs/cgroup", FSType: "cgroup2", Flags: nosuid | nodev | noexec, Optional: true},
}
