package idmap

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"allium/internal/child"

	"golang.org/x/sys/unix"
)

// HoldEnv is set in the holder's environment, so that PID 1's binary
// knows it is "init userns" even where its pid is 1.
const HoldEnv = "ALLIUM_USERNS_HOLD"

// HoldMain is the holder of a user namespace, "init userns": it lives
// until its stdin reaches EOF, so that the one who started it can open
// its /proc/PID/ns/user. It returns the exit code.
func HoldMain(stdin io.Reader) int {
	io.Copy(io.Discard, stdin)
	return 0
}

// Mapper makes idmapped bind mounts. Starter and Exe are required.
type Mapper struct {
	// Starter starts the holder of each user namespace: PID 1's reaper.
	Starter child.Starter
	// Exe is PID 1's binary, run as "init userns" (/proc/self/exe).
	Exe string
}

// Bind mounts src at dst (a directory that exists) with owners shifted
// into r: a file of src owned by uid N shows at dst as owned by Base+N.
// It is a bind of src alone, read-only, without the mounts below it.
// It fails where the kernel or src's filesystem has no idmapped mounts
// (EINVAL, ENOSYS, EPERM): the caller falls back to a shifted copy.
func (m Mapper) Bind(src, dst string, r Range) error {
	ns, err := m.userns(r)
	if err != nil {
		return err
	}
	defer ns.Close()
	tree, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return &os.PathError{Op: "open_tree", Path: src, Err: err}
	}
	defer unix.Close(tree)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP | unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV,
		Userns_fd: uint64(ns.Fd())}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		return &os.PathError{Op: "idmap the mount of", Path: src, Err: err}
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "move_mount", Path: dst, Err: err}
	}
	return nil
}

// userns starts a holder in a new user namespace that maps r, opens
// that namespace and lets the holder go.
func (m Mapper) userns(r Range) (*os.File, error) {
	if r.IsZero() {
		return nil, errors.New("idmap: no range")
	}
	if m.Exe == "" {
		return nil, errors.New("idmap: Mapper has no Exe")
	}
	in, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer in.Close()
	defer w.Close() // EOF: the holder exits
	ids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(r.Base), Size: int(r.Size)}}
	cmd := &exec.Cmd{Path: m.Exe, Args: []string{"init", "userns"}, Env: []string{HoldEnv + "=1"}, Dir: "/", Stdin: in,
		SysProcAttr: &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER, UidMappings: ids, GidMappings: ids, Setsid: true}}
	if _, err := child.Start(m.Starter, cmd); err != nil {
		return nil, fmt.Errorf("start a user namespace for %s: %w", r, err)
	}
	// Go wrote the maps before the holder's execve, which Start waited
	// for: the namespace is complete.
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid))
	if err != nil {
		unix.Kill(cmd.Process.Pid, unix.SIGKILL)
		return nil, err
	}
	return ns, nil
}
