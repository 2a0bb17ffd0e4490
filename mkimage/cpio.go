package main

// The initramfs is a newc ("070701") cpio archive, the format the kernel
// unpacks (Documentation/driver-api/early-userspace/buffer-format.rst):
//
//	+---------------------------+-----------------+-----------------+
//	| header: "070701" + 13 x 8 | name, NUL, pad  | data, pad       |  ...  "TRAILER!!!"
//	| ASCII hex digits = 110 B  | to a multiple 4 | to a multiple 4 |
//	+---------------------------+-----------------+-----------------+
//
// The 13 fields are ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
// devminor, rdevmajor, rdevminor, namesize (with the NUL) and check.
//
// We write it ourselves rather than use a library: the one thing a library
// would have to do for us is a character device (/dev/console, 5,1), and
// github.com/cavaliergopher/cpio's Header has no rdev field, so it cannot;
// u-root's pkg/cpio can, but brings u-root's module with it. The format is
// a hundred lines.

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Type bits of a cpio mode, as in stat(2).
const (
	modeFmt  = 0o170000
	modeDir  = 0o040000
	modeReg  = 0o100000
	modeLink = 0o120000
	modeChr  = 0o020000
)

const (
	cpioMagic   = "070701"
	cpioHdrLen  = 110
	cpioTrailer = "TRAILER!!!"
)

// cpioEntry is one member of an archive.
type cpioEntry struct {
	mode         uint32 // type and permission bits, as in stat(2)
	data         []byte // a file's contents or a symlink's target
	major, minor uint32 // a device node's numbers
	implicit     bool   // a parent directory nobody asked for
}

// archive collects entries and writes them reproducibly: sorted by name
// (so every parent comes before its children), mtime 0, owner 0:0, inode
// numbers in order.
type archive struct {
	entries map[string]cpioEntry
}

func newArchive() *archive {
	return &archive{entries: map[string]cpioEntry{}}
}

// cpioName turns "/etc/allium/node.json" into "etc/allium/node.json", the
// form the kernel and GNU cpio use.
func cpioName(name string) (string, error) {
	clean := strings.TrimPrefix(path.Clean("/"+name), "/")
	if clean == "" || clean != strings.TrimPrefix(name, "/") {
		return "", fmt.Errorf("cpio: bad name %q: want a clean path such as /etc/x", name)
	}
	return clean, nil
}

func (a *archive) add(name string, e cpioEntry) error {
	n, err := cpioName(name)
	if err != nil {
		return err
	}
	if old, ok := a.entries[n]; ok && !(old.implicit && e.mode&modeFmt == modeDir) {
		return fmt.Errorf("cpio: %s added twice", name)
	}
	a.entries[n] = e
	return nil
}

// permBits maps a mode to the low twelve bits of stat(2). It takes both
// Go's fs.ModeSticky and a raw 0o1000 (as in rootfs.Dirs' 0o1777), and
// likewise for setuid and setgid.
func permBits(m fs.FileMode) uint32 {
	b := uint32(m & 0o7777)
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	return b
}

// hasDir reports whether name was added as a directory.
func (a *archive) hasDir(name string) bool {
	n, err := cpioName(name)
	return err == nil && a.entries[n].mode&modeFmt == modeDir
}

// Dir adds a directory. A parent added implicitly before takes this mode.
func (a *archive) Dir(name string, perm fs.FileMode) error {
	return a.add(name, cpioEntry{mode: modeDir | permBits(perm)})
}

// File adds a regular file.
func (a *archive) File(name string, perm fs.FileMode, data []byte) error {
	return a.add(name, cpioEntry{mode: modeReg | permBits(perm), data: data})
}

// Symlink adds a symbolic link to target.
func (a *archive) Symlink(name, target string) error {
	return a.add(name, cpioEntry{mode: modeLink | 0o777, data: []byte(target)})
}

// CharDev adds a character device node.
func (a *archive) CharDev(name string, perm fs.FileMode, major, minor uint32) error {
	return a.add(name, cpioEntry{mode: modeChr | permBits(perm), major: major, minor: minor})
}

// Len is the number of entries WriteTo writes, parents included.
func (a *archive) Len() int { return len(a.names()) }

// names fills in missing parent directories (mode 0755, since the kernel
// does not create them) and returns every name in order.
func (a *archive) names() []string {
	for n := range a.entries {
		for d := path.Dir(n); d != "."; d = path.Dir(d) {
			if _, ok := a.entries[d]; !ok {
				a.entries[d] = cpioEntry{mode: modeDir | 0o755, implicit: true}
			}
		}
	}
	names := make([]string, 0, len(a.entries))
	for n := range a.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// WriteTo writes the archive, ending with the trailer.
func (a *archive) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: bufio.NewWriter(w)}
	for i, n := range a.names() {
		writeEntry(cw, uint32(i+1), n, a.entries[n])
	}
	writeEntry(cw, 0, cpioTrailer, cpioEntry{})
	if cw.err == nil {
		cw.err = cw.w.(*bufio.Writer).Flush()
	}
	return cw.n, cw.err
}

func writeEntry(w *countWriter, ino uint32, name string, e cpioEntry) {
	nlink := uint32(1)
	if e.mode&modeFmt == modeDir {
		nlink = 2
	}
	fmt.Fprintf(w, "%s%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		cpioMagic, ino, e.mode, 0, 0, nlink, 0, len(e.data),
		0, 0, e.major, e.minor, len(name)+1, 0)
	io.WriteString(w, name)
	w.Write(make([]byte, 1+pad4(cpioHdrLen+len(name)+1)))
	w.Write(e.data)
	w.Write(make([]byte, pad4(len(e.data))))
}

// pad4 is how many bytes bring n to a multiple of four.
func pad4(n int) int { return (4 - n%4) % 4 }

// countWriter counts what it writes and keeps the first error, so the
// writes above need no checks of their own.
type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}
