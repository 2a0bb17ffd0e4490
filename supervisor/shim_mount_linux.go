package supervisor

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// The namespaces rung's filesystem: what the shim mounts in its new
// mount namespace before pivot_root, as data (nsMounts, nsLinks) and
// one loop that executes it (setupRoot).

// mountOp is what a row of nsMounts does at its target.
type mountOp uint8

const (
	opFS     mountOp = iota // mount a new filesystem (fstype, data)
	opBind                  // bind the node's file src over the target
	opRebind                // bind the target over itself, then make it read-only
	opSysfs                 // a new sysfs, read-only; else the node's, read-only (sysBind)
)

// nsMount is one mount inside the container's root. Target is relative
// to the root and resolved inside it without following a symlink.
type nsMount struct {
	op     mountOp
	target string
	file   bool   // the target is a file, not a directory
	maybe  bool   // skip it if the target is missing (a kernel without it); never create it
	src    string // opBind: the node's path; opFS: the source's name
	fstype string
	flags  uintptr
	data   string
}

const (
	nosuid = unix.MS_NOSUID
	nodev  = unix.MS_NODEV
	noexec = unix.MS_NOEXEC
)

// nsMounts are done in order: /proc and its masks, /sys, then /dev.
//
// /proc is a new proc for the new pid namespace. Its files that reach
// the node's kernel are masked: /dev/null over those that leak (kernel
// memory, keys, timers), read-only over those that configure it.
//
// /sys is a new sysfs, read-only. Without a network namespace the
// kernel lets real root mount one (sysfs is tied to the mounter's
// network namespace, here the node's, which the workload shares
// anyway), and it has none of the node's submounts: no cgroup or debug
// filesystem appears in it, as they would in a recursive bind of the
// node's /sys. In a user namespace that shares the node's network the
// kernel refuses a new sysfs (EPERM: the user namespace does not own
// the network namespace); there /sys is the node's, bound recursively
// and made read-only all the way down (mount_setattr), with the
// filesystems mounted in it hidden under empty read-only tmpfs
// (sysBind).
//
// /dev is a small tmpfs with the node's harmless devices bound into it,
// a private devpts and a tmpfs for shared memory; nsLinks complete it.
var nsMounts = []nsMount{
	{op: opFS, target: "proc", src: "proc", fstype: "proc", flags: nosuid | nodev | noexec},
	{op: opBind, target: "proc/kcore", file: true, maybe: true, src: "/dev/null"},
	{op: opBind, target: "proc/keys", file: true, maybe: true, src: "/dev/null"},
	{op: opBind, target: "proc/timer_list", file: true, maybe: true, src: "/dev/null"},
	{op: opBind, target: "proc/sched_debug", file: true, maybe: true, src: "/dev/null"},
	{op: opBind, target: "proc/latency_stats", file: true, maybe: true, src: "/dev/null"},
	{op: opRebind, target: "proc/sys", maybe: true},
	{op: opRebind, target: "proc/sysrq-trigger", file: true, maybe: true},
	{op: opRebind, target: "proc/irq", maybe: true},
	{op: opRebind, target: "proc/bus", maybe: true},
	{op: opRebind, target: "proc/fs", maybe: true},
	{op: opSysfs, target: "sys", src: "sysfs", fstype: "sysfs", flags: unix.MS_RDONLY | nosuid | nodev | noexec},
	{op: opFS, target: "dev", src: "tmpfs", fstype: "tmpfs", flags: nosuid | noexec, data: "mode=755,size=64k"},
	{op: opBind, target: "dev/null", file: true, src: "/dev/null"},
	{op: opBind, target: "dev/zero", file: true, src: "/dev/zero"},
	{op: opBind, target: "dev/full", file: true, src: "/dev/full"},
	{op: opBind, target: "dev/random", file: true, src: "/dev/random"},
	{op: opBind, target: "dev/urandom", file: true, src: "/dev/urandom"},
	{op: opBind, target: "dev/tty", file: true, src: "/dev/tty"},
	{op: opFS, target: "dev/pts", src: "devpts", fstype: "devpts", flags: nosuid | noexec, data: "newinstance,ptmxmode=0666,mode=0620"},
	{op: opFS, target: "dev/shm", src: "shm", fstype: "tmpfs", flags: nosuid | nodev | noexec, data: "mode=1777"},
}

// nsLinks are the symlinks of /dev: name (in dev) → target. There is no
// /dev/console: the workload has no terminal.
var nsLinks = [][2]string{
	{"ptmx", "pts/ptmx"}, {"fd", "/proc/self/fd"},
	{"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"},
}

// setupRoot makes the container's filesystem: the mount namespace's
// propagation private, root bound over itself (a mount point, as
// pivot_root wants, with the volumes under it), the mounts of nsMounts
// and the links of nsLinks. The inner shim then pivots into it (pivot).
func setupRoot(root string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return &os.PathError{Op: "make mounts private", Path: "/", Err: err}
	}
	if err := unix.Mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return &os.PathError{Op: "bind the root over itself", Path: root, Err: err}
	}
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rootFD)
	for _, m := range nsMounts {
		if err := m.do(rootFD); err != nil {
			return err
		}
	}
	for _, l := range nsLinks {
		if err := linkIn(rootFD, "dev", l[0], l[1]); err != nil {
			return err
		}
	}
	return nil
}

// do executes one row of nsMounts.
func (m nsMount) do(rootFD int) error {
	fd, err := openIn(rootFD, m.target, !m.maybe, m.file)
	if errors.Is(err, unix.ENOENT) && m.maybe {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	at := fdPath(fd)
	switch m.op {
	case opBind:
		err = unix.Mount(m.src, at, "", unix.MS_BIND, "")
	case opRebind:
		err = unix.Mount(at, at, "", unix.MS_BIND|unix.MS_REC, "")
	case opSysfs:
		err = unix.Mount(m.src, at, m.fstype, m.flags, m.data)
		if errors.Is(err, unix.EPERM) {
			return sysBind(rootFD, m.target)
		}
	default:
		err = unix.Mount(m.src, at, m.fstype, m.flags, m.data)
	}
	if err != nil {
		return &os.PathError{Op: "mount " + m.describe(), Path: "/" + m.target, Err: err}
	}
	if m.op == opRebind {
		return remountReadOnly(rootFD, m.target, m.file)
	}
	return nil
}

func (m nsMount) describe() string {
	switch m.op {
	case opBind:
		return "bind of " + m.src
	case opRebind:
		return "bind over itself"
	case opSysfs:
		return "sysfs"
	}
	return m.fstype
}

// remountReadOnly makes the bind mount at target (a file, or a
// directory) read-only. It opens target again: a descriptor opened
// before the bind names the mount below it.
//
// Regression: it opened a file target (/proc/sysrq-trigger) as a
// directory, and every container failed with ENOTDIR on kernels that
// have the file (the QEMU tier's; the root tier's host has none).
func remountReadOnly(rootFD int, target string, file bool) error {
	fd, err := openIn(rootFD, target, false, file)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | nosuid | nodev | noexec)
	if err := unix.Mount("", fdPath(fd), "", flags, ""); err != nil {
		return &os.PathError{Op: "remount read-only", Path: "/" + target, Err: err}
	}
	return nil
}

// openIn opens rel inside the directory dirFD as an O_PATH descriptor,
// one component at a time, refusing symlinks: an image may put one at a
// mount point (/proc -> /etc), and mount(2) given a path would follow
// it, even out of the root. With create, a missing last component is
// made, a directory or (file) an empty file.
func openIn(dirFD int, rel string, create, file bool) (int, error) {
	parts := strings.Split(rel, "/")
	fd, err := unix.Dup(dirFD)
	if err != nil {
		return -1, os.NewSyscallError("dup", err)
	}
	for i, name := range parts {
		last := i == len(parts)-1
		if last && create {
			if err := makeIn(fd, name, file); err != nil {
				unix.Close(fd)
				return -1, &os.PathError{Op: "create", Path: "/" + rel, Err: err}
			}
		}
		next, err := openNoFollow(fd, name, !last || !file)
		unix.Close(fd)
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: "/" + path.Join(parts[:i+1]...), Err: err}
		}
		fd = next
	}
	return fd, nil
}

// errSymlink refuses a symlink where a mount point should be.
var errSymlink = errors.New("is a symlink; refusing to mount over it (remove it from the image)")

// openNoFollow opens name in dirFD without following a symlink, and
// refuses one.
func openNoFollow(dirFD int, name string, dir bool) (int, error) {
	fd, err := unix.Openat(dirFD, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		err = errSymlink
	case dir && st.Mode&unix.S_IFMT != unix.S_IFDIR:
		err = unix.ENOTDIR
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// makeIn makes name in dirFD unless something is there.
func makeIn(dirFD int, name string, file bool) error {
	if !file {
		if err := unix.Mkdirat(dirFD, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
		return nil
	}
	fd, err := unix.Openat(dirFD, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o666)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// linkIn makes the symlink dir/name → target inside rootFD.
func linkIn(rootFD int, dir, name, target string) error {
	fd, err := openIn(rootFD, dir, false, false)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Symlinkat(target, fd, name); err != nil {
		return &os.PathError{Op: "symlink to " + target, Path: "/" + dir + "/" + name, Err: err}
	}
	return nil
}

// moveRoot is pivot where the node's root is the initramfs, which
// pivot_root refuses (EINVAL): it moves root's mount onto / and chroots
// into it, as runc's --no-pivot does. The old root stays mounted
// beneath, out of reach of a process without CAP_SYS_CHROOT and
// CAP_SYS_ADMIN, which the workload never has; the shim, which keeps
// the old root, is not dumpable, so /proc/1/root does not lead there.
func moveRoot(root string) error {
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return &os.PathError{Op: "move the root onto /", Path: root, Err: err}
	}
	if err := unix.Chroot("."); err != nil {
		return &os.PathError{Op: "chroot", Path: root, Err: err}
	}
	if err := unix.Chdir("/"); err != nil {
		return &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	return nil
}

// sysMasks are the filesystems a node may mount below /sys, hidden in a
// bind of the node's /sys (sysBind): each is covered by an empty
// read-only tmpfs where it is there.
var sysMasks = []string{
	"fs/cgroup", "fs/bpf", "fs/pstore", "fs/fuse/connections", "kernel/debug", "kernel/tracing",
	"kernel/security", "kernel/config", "firmware/efi/efivars",
}

// sysBind makes target the node's /sys, read-only with everything
// below it, and its filesystems hidden (sysMasks).
func sysBind(rootFD int, target string) error {
	tree, err := unix.OpenTree(unix.AT_FDCWD, "/sys", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return &os.PathError{Op: "bind the node's sysfs", Path: "/" + target, Err: err}
	}
	defer unix.Close(tree)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		return &os.PathError{Op: "make the node's sysfs read-only", Path: "/" + target, Err: err}
	}
	fd, err := openIn(rootFD, target, true, false)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.MoveMount(tree, "", fd, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "mount the node's sysfs", Path: "/" + target, Err: err}
	}
	for _, sub := range sysMasks {
		mask := nsMount{op: opFS, target: target + "/" + sub, maybe: true, src: "none", fstype: "tmpfs",
			flags: unix.MS_RDONLY | nosuid | nodev | noexec, data: "size=4k,mode=555"}
		if err := mask.do(rootFD); err != nil {
			return err
		}
	}
	return nil
}

// fdPath names the file open at fd for mount(2), which takes paths.
func fdPath(fd int) string { return fmt.Sprintf("/proc/self/fd/%d", fd) }

// pivot makes root, a mount point, the root of the mount namespace
// with pivot_root(".", "."), which stacks the old root over the new one
// and needs no directory in the image to hold it; the old root is then
// detached, with every mount of the node below it. Every process of the
// namespace whose root or working directory was the old root moves to
// the new one.
func pivot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return &os.PathError{Op: "chdir", Path: root, Err: err}
	}
	err := unix.PivotRoot(".", ".")
	if errors.Is(err, unix.EINVAL) {
		return moveRoot(root)
	}
	if err != nil {
		return &os.PathError{Op: "pivot_root", Path: ".", Err: err}
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return &os.PathError{Op: "detach the old root", Path: ".", Err: err}
	}
	if err := unix.Chdir("/"); err != nil {
		return &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	return nil
}
