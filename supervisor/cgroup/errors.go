package cgroup

import (
	"errors"
	"strconv"
)

var (
	// ErrNoCgroup: no cgroup hierarchy is mounted where Open looked.
	ErrNoCgroup = errors.New("no cgroup hierarchy")
	// ErrMissingController: a controller the package needs is not
	// mounted (v1) or not offered (v2).
	ErrMissingController = errors.New("controller missing")
	// ErrBadName: a group's name is not a clean relative path.
	ErrBadName = errors.New("not a clean relative cgroup path")
	// ErrBadLimit: a limit out of its range.
	ErrBadLimit = errors.New("limit out of range")
	// ErrNotEmpty: processes stayed in a group that Kill or Remove
	// waited to see empty.
	ErrNotEmpty = errors.New("processes left in the cgroup")
	// ErrUnsupported: cgroups on an OS that is not Linux.
	ErrUnsupported = errors.New("cgroups are Linux only")
)

// Error is a failed operation on one file or directory of the cgroup
// filesystem: "cgroup: write /sys/fs/cgroup/allium/containers/web/memory.max
// "268435456": EINVAL".
type Error struct {
	Op    string // "write", "read", "mkdir", "rmdir", "kill", ...
	Path  string // the file or directory
	Value string // what was written, or ""
	Err   error
}

func (e *Error) Error() string {
	s := "cgroup: " + e.Op + " " + e.Path
	if e.Value != "" {
		s += " " + strconv.Quote(e.Value)
	}
	return s + ": " + errText(e.Err)
}

func (e *Error) Unwrap() error { return e.Err }
