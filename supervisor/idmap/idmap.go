package idmap

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// Size is the number of ids in a range: the 16-bit ids every image
// uses. A file of an image owned by an id above them shows as nobody
// (65534) inside the container.
const Size = 65536

// First is the base of the first range. The ids below it are left to
// the node (root, tor's user) and to anything an operator sets up
// beside Allium (a distro's subuid ranges start at 100000).
const First = 1 << 20

// Range is a container's ids on the host: container id N is host id
// Base+N for N below Size. The zero Range is the host's own ids, what
// a container below the userns rung has.
type Range struct {
	Base uint32 `json:"base"`
	Size uint32 `json:"size"`
}

// Host is the host's ids seen as a range: the owners of a tree made by
// a container below the userns rung.
var Host = Range{Base: 0, Size: Size}

// IsZero reports the zero Range: no user namespace.
func (r Range) IsZero() bool { return r.Size == 0 }

// String is "BASE-LAST", or "host" for the zero Range.
func (r Range) String() string {
	if r.IsZero() {
		return "host"
	}
	return fmt.Sprintf("%d-%d", r.Base, uint64(r.Base)+uint64(r.Size)-1)
}

// Contains reports whether host id lies in r.
func (r Range) Contains(id uint32) bool {
	return id >= r.Base && uint64(id) < uint64(r.Base)+uint64(r.Size)
}

// ErrFull is Next's error when every range is taken.
var ErrFull = errors.New("idmap: every uid range is taken")

// maxRanges is how many ranges of Size fit from First below 2^32-1
// (the kernel's invalid id).
const maxRanges = ((1<<32 - 1) - First) / Size

// Next is the lowest range from First up that overlaps none of used.
func Next(used []Range) (Range, error) {
	taken := make([]bool, maxRanges)
	for _, u := range used {
		if u.IsZero() || u.Base < First {
			continue
		}
		for i := (u.Base - First) / Size; i < maxRanges && uint64(First)+uint64(i)*Size < uint64(u.Base)+uint64(u.Size); i++ {
			taken[i] = true
		}
	}
	i := slices.Index(taken, false)
	if i < 0 {
		return Range{}, ErrFull
	}
	return Range{Base: First + uint32(i)*Size, Size: Size}, nil
}

// Shift moves the owners of every file below dir, dir included, from
// range from to the same place in range to, without following
// symlinks or crossing into another filesystem. Owners outside from
// are left alone. It is what a container's writable layer and volumes
// need when it moves to a new range.
func Shift(dir string, from, to Range) error {
	if from == to {
		return nil
	}
	top, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	dev := top.Sys().(*syscall.Stat_t).Dev
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		if st.Dev != dev {
			return fs.SkipDir // a mount below: not ours to shift
		}
		uid, gid := to.Map(from, st.Uid), to.Map(from, st.Gid)
		if uid == st.Uid && gid == st.Gid {
			return nil
		}
		if err := os.Lchown(p, int(uid), int(gid)); err != nil {
			return err
		}
		// chown clears setuid and setgid bits of a file: put them back.
		if m := info.Mode(); m.IsRegular() && m&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
			return os.Chmod(p, m)
		}
		return nil
	})
}

// Map is host id, which lies in from, moved to the same place in r; an
// id outside from is returned as it is.
func (r Range) Map(from Range, id uint32) uint32 {
	if !from.Contains(id) {
		return id
	}
	off := id - from.Base
	if !r.IsZero() && off >= r.Size {
		return id
	}
	return r.Base + off
}

// RangeOf is the range host id belongs to: Host below Size, the range
// from First that holds it above First, and the zero Range between.
// A tree's top owner says which range it was last shifted to.
func RangeOf(id uint32) Range {
	switch {
	case id < Size:
		return Host
	case id < First:
		return Range{}
	}
	return Range{Base: First + (id-First)/Size*Size, Size: Size}
}

// Own shifts the tree at dir to r (Host for the zero Range) from the
// range its top directory's owner is in: a writable layer or a volume
// last used by a container at another rung or with another range. It
// does nothing when the top is in r already.
func Own(dir string, r Range) error {
	if r.IsZero() {
		r = Host
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	from := RangeOf(st.Sys().(*syscall.Stat_t).Uid)
	if from == r || from.IsZero() {
		return nil
	}
	return Shift(dir, from, r)
}
