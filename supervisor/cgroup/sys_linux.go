package cgroup

import (
	"fmt"
	"path/filepath"

	"allium/internal/errno"

	"golang.org/x/sys/unix"
)

// Cgroup filesystem magics (statfs f_type).
const (
	cgroup2Magic = 0x63677270
	cgroup1Magic = 0x27e0eb
)

// detect finds the cgroup version mounted at root: v2 when root itself
// is cgroup2, v1 when root/memory is a v1 hierarchy (root then being a
// tmpfs of per-controller mounts).
func detect(root string) (int, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return 0, &Error{Op: "statfs", Path: root, Err: err}
	}
	if st.Type == cgroup2Magic {
		return 2, nil
	}
	if isV1Mount(filepath.Join(root, "memory")) {
		return 1, nil
	}
	return 0, &Error{Op: "open", Path: root, Err: fmt.Errorf(
		"%w: not cgroup2 (statfs magic %#x) and no v1 hierarchy at %s", ErrNoCgroup, st.Type, filepath.Join(root, "memory"))}
}

// isV1Mount reports whether dir is a cgroup v1 hierarchy (following a
// symlink such as cpu -> cpu,cpuacct).
func isV1Mount(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == cgroup1Magic
}

func sigkill(pid int) error { return unix.Kill(pid, unix.SIGKILL) }

// errText names a failed system call by its errno ("EBUSY").
func errText(err error) string { return errno.Name(err) }
