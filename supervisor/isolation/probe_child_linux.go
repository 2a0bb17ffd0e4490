package isolation

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"allium/internal/errno"

	"golang.org/x/sys/unix"
)

// ProbeMain is the probe's child, "init probe KIND", started in new
// namespaces by Probe. For namespaces, being started was the test. For
// "mounts" it makes its mount namespace private (mounts made in it must
// not propagate to the node's), then tries overlayfs and pivot_root on
// a scratch tmpfs, which vanishes with it, and prints "NAME: ok" or
// "NAME: why" for each of private_mounts, overlayfs and pivot_root. It
// returns the exit code: 0, or 2 for usage.
func ProbeMain(args []string, stdout io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stdout, "usage: init probe KIND")
		return 2
	}
	switch args[0] {
	case "user":
		fmt.Fprintf(stdout, "userns_mounts: %s\n", usernsMounts())
		return 0
	case "mounts":
	default:
		return 0
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		why := errno.Name(err)
		if errors.Is(err, unix.EINVAL) {
			why += ": the node's root is not a mount point (a chroot into a plain directory?)"
		}
		fmt.Fprintf(stdout, "private_mounts: %s\noverlayfs: no private mounts\npivot_root: no private mounts\n", why)
		return 0
	}
	fmt.Fprintln(stdout, "private_mounts: ok")
	dir, err := scratch()
	if err != nil {
		fmt.Fprintf(stdout, "overlayfs: %v\npivot_root: %v\n", err, err)
		return 0
	}
	for _, t := range []struct {
		name string
		try  func(string) error
	}{{"overlayfs", tryOverlay}, {"pivot_root", tryPivotRoot}} {
		if err := t.try(dir); err != nil {
			fmt.Fprintf(stdout, "%s: %v\n", t.name, err)
		} else {
			fmt.Fprintf(stdout, "%s: ok\n", t.name)
		}
	}
	return 0
}

// usernsMounts is what the shim does first at the userns rung, as the
// root of a user namespace with its own mount and pid namespaces: make
// the mounts private, mount a tmpfs and a new /proc; "ok" or why not.
func usernsMounts() string {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return "make the mounts private: " + errno.Name(err)
	}
	dir, err := scratch()
	if err != nil {
		return err.Error()
	}
	p := filepath.Join(dir, "proc")
	if err := os.Mkdir(p, 0o755); err != nil {
		return err.Error()
	}
	if err := unix.Mount("proc", p, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		why := "mount /proc: " + errno.Name(err)
		if errors.Is(err, unix.EPERM) {
			why += " (the node's /proc has files mounted over, as in an OS container: the kernel lets no user namespace mount one)"
		}
		return why
	}
	return "ok"
}

// scratch mounts a tmpfs on a directory the node has, in this (private)
// mount namespace, and returns it.
func scratch() (string, error) {
	for _, dir := range []string{"/tmp", "/run", "/mnt"} {
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
				return "", fmt.Errorf("mount a tmpfs on %s: %s", dir, errno.Name(err))
			}
			return dir, nil
		}
	}
	return "", errors.New("no /tmp, /run or /mnt to mount a scratch tmpfs on")
}

func tryPivotRoot(dir string) error {
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=64k"); err != nil {
		return fmt.Errorf("mount a tmpfs on %s: %s", root, errno.Name(err))
	}
	if err := os.Mkdir(filepath.Join(root, "old"), 0o755); err != nil {
		return err
	}
	err := unix.PivotRoot(root, filepath.Join(root, "old"))
	if errors.Is(err, unix.EINVAL) && onInitramfs() {
		return errors.New("EINVAL: the node's root is the initramfs, which cannot be pivoted (the shim moves the root instead)")
	}
	if err != nil {
		return errors.New(errno.Name(err))
	}
	return nil
}

// onInitramfs reports whether / is the kernel's initial ramfs or tmpfs.
func onInitramfs() bool {
	var st unix.Statfs_t
	return unix.Statfs("/", &st) == nil && (st.Type == unix.RAMFS_MAGIC || st.Type == unix.TMPFS_MAGIC)
}

func tryOverlay(dir string) error {
	for _, d := range []string{"l", "u", "w", "m"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	opts := fmt.Sprintf("lowerdir=%s/l,upperdir=%s/u,workdir=%s/w", dir, dir, dir)
	if err := unix.Mount("overlay", filepath.Join(dir, "m"), "overlay", 0, opts); err != nil {
		return errors.New(errno.Name(err))
	}
	return nil
}
