package main

import (
	"archive/tar"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// entryPolicy says how host files become image entries; pack's flags
// set it, and both a directory pack and a --binary pack follow it.
type entryPolicy struct {
	// owner replaces every uid:gid; nil keeps the owners on disk.
	owner *[2]int
	// epoch is SOURCE_DATE_EPOCH: later mtimes are clamped to it, and
	// made-up entries get it. Zero means unset (made-up entries get
	// 1970-01-01).
	epoch time.Time
	// allowSetuid keeps setuid and setgid bits; otherwise they are
	// dropped with a warning, since the node would refuse them.
	allowSetuid bool
	// allowDevices keeps device nodes; otherwise they are skipped with a
	// warning.
	allowDevices bool
	// skip are host files never packed: the output being written.
	skip map[inode]bool
	// warn collects what was left out or changed.
	warn *warnings
}

// mtime clamps a host mtime to the epoch and to whole seconds.
func (p *entryPolicy) mtime(t time.Time) time.Time {
	t = t.Truncate(time.Second)
	if !p.epoch.IsZero() && t.After(p.epoch) {
		return p.epoch
	}
	return t
}

// madeTime is the mtime of entries that have no host file.
func (p *entryPolicy) madeTime() time.Time {
	if p.epoch.IsZero() {
		return time.Unix(0, 0)
	}
	return p.epoch
}

// owned sets a header's owner, from the host file unless overridden.
func (p *entryPolicy) owned(h *tar.Header, st *syscall.Stat_t) {
	if p.owner != nil {
		h.Uid, h.Gid = p.owner[0], p.owner[1]
		return
	}
	h.Uid, h.Gid = int(st.Uid), int(st.Gid)
}

// entry turns a host file into a node named name, or reports false for
// a file that is left out (with a warning if it is not the output).
// hostPath is where to read it.
func (p *entryPolicy) entry(name, hostPath string, fi fs.FileInfo) (node, bool, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return node{}, false, fmt.Errorf("%s: no stat information", hostPath)
	}
	if p.skip[inodeOf(fi)] {
		return node{}, false, nil
	}
	h := tar.Header{Mode: p.mode(name, fi), ModTime: p.mtime(fi.ModTime())}
	p.owned(&h, st)
	n := node{name: name}
	switch t := fi.Mode().Type(); {
	case t == 0:
		h.Typeflag, h.Size, n.src = tar.TypeReg, fi.Size(), hostPath
		if st.Nlink > 1 {
			n.ino = inodeOf(fi)
		}
	case t == fs.ModeDir:
		h.Typeflag = tar.TypeDir
	case t == fs.ModeSymlink:
		target, err := os.Readlink(hostPath)
		if err != nil {
			return node{}, false, err
		}
		if climbsOut(name, target) {
			return node{}, false, fmt.Errorf("%w: /%s -> %s: the node refuses it; point it inside the tree, or remove it", errSymlinkEscapes, name, target)
		}
		h.Typeflag, h.Linkname = tar.TypeSymlink, target
	case t == fs.ModeNamedPipe:
		h.Typeflag = tar.TypeFifo
	case t&fs.ModeDevice != 0 && p.allowDevices:
		h.Typeflag, h.Devmajor, h.Devminor = tar.TypeBlock, int64(unix.Major(uint64(st.Rdev))), int64(unix.Minor(uint64(st.Rdev)))
		if t&fs.ModeCharDevice != 0 {
			h.Typeflag = tar.TypeChar
		}
	default:
		p.warn.add(skipReason(t), name)
		return node{}, false, nil
	}
	n.hdr = h
	return n, true, nil
}

// skipReason is the warning for a file type entry leaves out.
func skipReason(t fs.FileMode) string {
	switch {
	case t&fs.ModeSocket != 0:
		return "skipped sockets (they cannot be archived)"
	case t&fs.ModeDevice != 0:
		return "skipped device nodes (pass --allow-devices to keep them)"
	}
	return "skipped files of an unknown type"
}

// mode is a file's permission bits in tar's encoding. Setuid and setgid
// files lose those bits unless allowed; directories keep them, as the
// node does (setgid on a directory only passes its group on).
func (p *entryPolicy) mode(name string, fi fs.FileInfo) int64 {
	m := fi.Mode()
	bits := int64(m.Perm())
	if m&fs.ModeSticky != 0 {
		bits |= 0o1000
	}
	if m&(fs.ModeSetuid|fs.ModeSetgid) == 0 {
		return bits
	}
	if !p.allowSetuid && !m.IsDir() {
		p.warn.add("dropped setuid/setgid bits (pass --allow-setuid to keep them)", name)
		return bits
	}
	if m&fs.ModeSetuid != 0 {
		bits |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		bits |= 0o2000
	}
	return bits
}

// climbsOut reports whether a relative symlink target climbs above the
// root from the link's directory. An absolute target is resolved from
// the container's root, so it cannot.
func climbsOut(name, target string) bool {
	if path.IsAbs(target) {
		return false
	}
	p := path.Join(path.Dir(name), target)
	return p == ".." || strings.HasPrefix(p, "../")
}

func inodeOf(fi fs.FileInfo) inode {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return inode{}
	}
	return inode{dev: uint64(st.Dev), ino: st.Ino}
}

// walkTree makes the nodes of a directory pack: dir itself as "" and
// everything below it, sorted, hard links linked.
func walkTree(dir string, p *entryPolicy) ([]node, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", dir)
	}
	var nodes []node
	err = filepath.WalkDir(root, func(hostPath string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n, ok, err := p.entry(relName(root, hostPath), hostPath, fi)
		if ok {
			nodes = append(nodes, n)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	sortNodes(nodes)
	linkHardLinks(nodes)
	return nodes, nil
}

// relName is hostPath's name below root in slashes; "" for root.
func relName(root, hostPath string) string {
	rel, err := filepath.Rel(root, hostPath)
	if err != nil || rel == "." {
		return ""
	}
	return filepath.ToSlash(rel)
}

// warnings gathers what pack left out or changed, by reason, to print a
// line per reason rather than one per file.
type warnings struct {
	order []string
	names map[string][]string
}

func (w *warnings) add(reason, name string) {
	if w.names == nil {
		w.names = map[string][]string{}
	}
	if _, ok := w.names[reason]; !ok {
		w.order = append(w.order, reason)
	}
	w.names[reason] = append(w.names[reason], "/"+name)
}

// lines are the warnings for people: the reason, how many, and a few of
// the names.
func (w *warnings) lines() []string {
	var out []string
	for _, r := range w.order {
		names := w.names[r]
		shown := strings.Join(names[:min(len(names), 3)], ", ")
		if len(names) > 3 {
			shown += fmt.Sprintf(" and %d more", len(names)-3)
		}
		out = append(out, fmt.Sprintf("%s: %s", r, shown))
	}
	return out
}
