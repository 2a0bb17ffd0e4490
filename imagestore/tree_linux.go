package imagestore

import (
	"archive/tar"
	"cmp"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"allium/manifest"

	"golang.org/x/sys/unix"
)

// tree writes an image's rootfs below dst.
//
// dst is opened as an os.Root, and rootfs is created and opened through
// it. Below rootfs every directory is opened from its parent's file
// descriptor by one openat(O_DIRECTORY|O_NOFOLLOW), and every entry is
// made by one *at call on a single name in its parent: no path is ever
// resolved through a symlink, which is stricter than os.Root (it
// follows symlinks that stay inside) and costs one system call per
// operation instead of one per path component. The tree remembers what
// it made (the staging directory starts empty and only the unpacker
// writes there), so that an entry below a symlink or a file is refused
// before any system call. Open directories are cached, LRU.
type tree struct {
	root  *os.Root
	top   *os.File // dst/rootfs
	topFD int
	chown bool // running as root: apply the archive's owners

	nodes map[string]kind     // what exists below rootfs ("" is rootfs)
	dirs  map[string]*dirMeta // directories to fix up at the end
	cache map[string]cachedDir
	tick  uint64
	buf   []byte
}

type kind uint8

const (
	kindNone  kind = iota
	kindDir        // a directory: never replaced
	kindLink       // a symlink
	kindOther      // a file, hard link, fifo or device
)

// dirMeta is what a directory gets once its contents are written.
// A directory made only as a parent has mode 0755 and no header.
type dirMeta struct {
	mode uint32
	h    *tar.Header
}

type cachedDir struct {
	fd   int
	used uint64
}

const maxCachedDirs = 32

func openTree(dst string) (*tree, error) {
	root, err := os.OpenRoot(dst)
	if err != nil {
		return nil, fmt.Errorf("imagestore: %w", err)
	}
	if err := root.Mkdir(manifest.RootfsDir, 0o700); err != nil {
		root.Close()
		return nil, fmt.Errorf("imagestore: unpack into %s: %w", dst, err)
	}
	top, err := root.OpenFile(manifest.RootfsDir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("imagestore: %w", err)
	}
	return &tree{
		root: root, top: top, topFD: int(top.Fd()), chown: os.Geteuid() == 0,
		nodes: map[string]kind{"": kindDir}, dirs: map[string]*dirMeta{"": {mode: 0o755}},
		cache: map[string]cachedDir{}, buf: make([]byte, 128<<10),
	}, nil
}

func (t *tree) close() {
	for _, c := range t.cache {
		unix.Close(c.fd)
	}
	t.top.Close()
	t.root.Close()
}

func parentOf(rel string) string {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return ""
	}
	return rel[:i]
}

func baseOf(rel string) string { return rel[strings.LastIndexByte(rel, '/')+1:] }

// dirFD returns an open descriptor of the directory rel, which must
// exist. It stays valid until the next call.
func (t *tree) dirFD(rel string) (int, error) {
	if rel == "" {
		return t.topFD, nil
	}
	t.tick++
	if c, ok := t.cache[rel]; ok {
		t.cache[rel] = cachedDir{c.fd, t.tick}
		return c.fd, nil
	}
	pfd, err := t.dirFD(parentOf(rel))
	if err != nil {
		return -1, err
	}
	fd, err := unix.Openat(pfd, baseOf(rel), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "openat", Path: manifest.RootfsDir + "/" + rel, Err: err}
	}
	if len(t.cache) >= maxCachedDirs {
		oldest := ""
		for k, c := range t.cache {
			if oldest == "" || c.used < t.cache[oldest].used {
				oldest = k
			}
		}
		unix.Close(t.cache[oldest].fd)
		delete(t.cache, oldest)
	}
	t.cache[rel] = cachedDir{fd, t.tick}
	return fd, nil
}

// mkdirs makes sure that rel is a directory, making it and its parents
// (mode 0755 at the end) where missing, and refusing to go through a
// symlink or a file.
func (t *tree) mkdirs(rel string) error {
	switch t.nodes[rel] {
	case kindDir:
		return nil
	case kindLink:
		return bad("%s/%s is a symlink: refusing to write through it", manifest.RootfsDir, rel)
	case kindOther:
		return bad("%s/%s is not a directory", manifest.RootfsDir, rel)
	}
	parent := parentOf(rel)
	if err := t.mkdirs(parent); err != nil {
		return err
	}
	pfd, err := t.dirFD(parent)
	if err != nil {
		return err
	}
	if err := unix.Mkdirat(pfd, baseOf(rel), 0o700); err != nil {
		return &os.PathError{Op: "mkdirat", Path: manifest.RootfsDir + "/" + rel, Err: err}
	}
	t.nodes[rel] = kindDir
	t.dirs[rel] = &dirMeta{mode: 0o755}
	return nil
}

// prepare makes rel's parents and removes an earlier entry at rel, and
// returns the parent's descriptor and rel's name in it.
func (t *tree) prepare(rel string, k kind) (int, string, error) {
	if rel == "" {
		return -1, "", bad("%s/ must be a directory", manifest.RootfsDir)
	}
	if err := t.mkdirs(parentOf(rel)); err != nil {
		return -1, "", err
	}
	pfd, err := t.dirFD(parentOf(rel))
	if err != nil {
		return -1, "", err
	}
	name := baseOf(rel)
	switch old := t.nodes[rel]; {
	case old == kindDir && k != kindDir:
		return -1, "", bad("would replace a directory with another type")
	case old == kindLink || old == kindOther:
		if err := unix.Unlinkat(pfd, name, 0); err != nil {
			return -1, "", &os.PathError{Op: "unlinkat", Path: manifest.RootfsDir + "/" + rel, Err: err}
		}
		delete(t.nodes, rel)
	}
	return pfd, name, nil
}

func (t *tree) dir(rel string, h *tar.Header) error {
	if rel != "" && t.nodes[rel] != kindDir {
		pfd, name, err := t.prepare(rel, kindDir)
		if err != nil {
			return err
		}
		if err := unix.Mkdirat(pfd, name, 0o700); err != nil {
			return &os.PathError{Op: "mkdirat", Path: manifest.RootfsDir + "/" + rel, Err: err}
		}
		t.nodes[rel] = kindDir
	}
	t.dirs[rel] = &dirMeta{mode: uint32(h.Mode) & 0o7777, h: h}
	return nil
}

// file writes a regular file and returns the bytes written.
func (t *tree) file(rel string, h *tar.Header, r io.Reader) (int64, error) {
	pfd, name, err := t.prepare(rel, kindOther)
	if err != nil {
		return 0, err
	}
	fd, err := unix.Openat(pfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return 0, &os.PathError{Op: "openat", Path: manifest.RootfsDir + "/" + rel, Err: err}
	}
	defer unix.Close(fd)
	t.nodes[rel] = kindOther
	n, err := io.CopyBuffer(fdWriter{fd, manifest.RootfsDir + "/" + rel}, r, t.buf)
	if err != nil {
		return n, err
	}
	return n, t.attrs(pfd, name, h, true)
}

func (t *tree) symlink(rel string, h *tar.Header) error {
	if h.Linkname == "" {
		return bad("a symlink with an empty target")
	}
	if err := t.mkdirs(parentOf(rel)); err != nil {
		return err
	}
	if t.linkEscapes(rel, h.Linkname) {
		return bad("symlink to %q: escapes the image", h.Linkname)
	}
	pfd, name, err := t.prepare(rel, kindLink)
	if err != nil {
		return err
	}
	if err := unix.Symlinkat(h.Linkname, pfd, name); err != nil {
		return &os.PathError{Op: "symlinkat", Path: manifest.RootfsDir + "/" + rel, Err: err}
	}
	t.nodes[rel] = kindLink
	return t.attrs(pfd, name, h, false)
}

// linkEscapes reports whether a symlink at rel to target could resolve
// outside rootfs, resolving as a chroot at rootfs would: an absolute
// target from rootfs, a relative one from rel's directory. ".." may not
// climb above rootfs, nor follow a component that is not a directory
// made earlier (directories are never replaced, so those stay
// directories); what a symlink component resolves to is checked when
// that symlink is made.
func (t *tree) linkEscapes(rel, target string) bool {
	var at []string
	if dir := parentOf(rel); !path.IsAbs(target) && dir != "" {
		at = strings.Split(dir, "/")
	}
	sure := true // at names directories this archive made
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
		case "..":
			if len(at) == 0 || !sure {
				return true
			}
			at = at[:len(at)-1]
		default:
			at = append(at, c)
			sure = sure && t.nodes[strings.Join(at, "/")] == kindDir
		}
	}
	return false
}

// link makes a hard link at rel to target, an earlier file of rootfs
// (name is the archive's spelling, for errors). A hard link to a
// symlink is refused: the same relative target would resolve from
// another directory.
func (t *tree) link(rel, target, name string) error {
	switch k := t.nodes[target]; {
	case rel == target:
		return bad("a hard link to itself")
	case k == kindLink:
		return bad("hard link to %q: a symlink", name)
	case k != kindOther:
		return bad("hard link to %q: not a file earlier in the archive", name)
	}
	tfd, err := t.dirFD(parentOf(target))
	if err != nil {
		return err
	}
	// Hold the target's directory: making rel's parents may evict it.
	tfd, err = unix.FcntlInt(uintptr(tfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	defer unix.Close(tfd)
	pfd, base, err := t.prepare(rel, kindOther)
	if err != nil {
		return err
	}
	if err := unix.Linkat(tfd, baseOf(target), pfd, base, 0); err != nil {
		return &os.PathError{Op: "linkat", Path: manifest.RootfsDir + "/" + rel, Err: err}
	}
	t.nodes[rel] = kindOther
	return nil
}

// node makes a fifo or a device node.
func (t *tree) node(rel string, h *tar.Header) error {
	pfd, name, err := t.prepare(rel, kindOther)
	if err != nil {
		return err
	}
	typ := map[byte]uint32{tar.TypeFifo: unix.S_IFIFO, tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK}[h.Typeflag]
	dev := unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))
	if err := unix.Mknodat(pfd, name, typ|0o600, int(dev)); err != nil {
		return &os.PathError{Op: "mknodat", Path: manifest.RootfsDir + "/" + rel, Err: err}
	}
	t.nodes[rel] = kindOther
	return t.attrs(pfd, name, h, true)
}

// attrs applies an entry's owner (as root), mode (chmod after chown,
// which clears setuid bits) and times to name in the directory pfd. A
// symlink has no mode of its own.
func (t *tree) attrs(pfd int, name string, h *tar.Header, chmod bool) error {
	if t.chown {
		if err := unix.Fchownat(pfd, name, h.Uid, h.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "fchownat", Path: name, Err: err}
		}
	}
	if chmod {
		// name is not a symlink (this tree just made it), so following is moot.
		if err := unix.Fchmodat(pfd, name, uint32(h.Mode)&0o7777, 0); err != nil {
			return &os.PathError{Op: "fchmodat", Path: name, Err: err}
		}
	}
	return setTimes(pfd, name, h)
}

func setTimes(pfd int, name string, h *tar.Header) error {
	if h.ModTime.IsZero() {
		return nil
	}
	atime := h.AccessTime
	if atime.IsZero() {
		atime = h.ModTime
	}
	ts := []unix.Timespec{timespec(atime), timespec(h.ModTime)}
	if err := unix.UtimesNanoAt(pfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: name, Err: err}
	}
	return nil
}

func timespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

// finish gives directories their modes, owners and times, deepest
// first, so that a read-only directory is closed only once everything
// below it is written.
func (t *tree) finish() error {
	rels := make([]string, 0, len(t.dirs))
	for rel := range t.dirs {
		rels = append(rels, rel)
	}
	slices.SortFunc(rels, func(a, b string) int { return cmp.Compare(depth(b), depth(a)) })
	for _, rel := range rels {
		if err := t.fixDir(rel, t.dirs[rel]); err != nil {
			return fmt.Errorf("imagestore: %w", err)
		}
	}
	return nil
}

// depth is how far below rootfs rel is: 0 for rootfs itself.
func depth(rel string) int {
	if rel == "" {
		return 0
	}
	return strings.Count(rel, "/") + 1
}

func (t *tree) fixDir(rel string, m *dirMeta) error {
	pfd, name := t.topFD, ""
	if rel != "" {
		fd, err := t.dirFD(parentOf(rel))
		if err != nil {
			return err
		}
		pfd, name = fd, baseOf(rel)
	}
	if m.h == nil {
		return fchmodat(pfd, name, m.mode)
	}
	if t.chown {
		if err := fchownat(pfd, name, m.h.Uid, m.h.Gid); err != nil {
			return err
		}
	}
	if err := fchmodat(pfd, name, m.mode); err != nil {
		return err
	}
	if name == "" {
		return t.root.Chtimes(manifest.RootfsDir, m.h.ModTime, m.h.ModTime)
	}
	return setTimes(pfd, name, m.h)
}

// fchmodat and fchownat act on name in dir, or on dir itself for "".
func fchmodat(dir int, name string, mode uint32) error {
	var err error
	if name == "" {
		err = unix.Fchmod(dir, mode)
	} else {
		err = unix.Fchmodat(dir, name, mode, 0)
	}
	if err != nil {
		return &os.PathError{Op: "chmod", Path: manifest.RootfsDir + "/" + name, Err: err}
	}
	return nil
}

func fchownat(dir int, name string, uid, gid int) error {
	err := unix.Fchownat(dir, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH)
	if err != nil {
		return &os.PathError{Op: "chown", Path: manifest.RootfsDir + "/" + name, Err: err}
	}
	return nil
}

func (t *tree) writeManifest(raw []byte) error {
	if err := t.root.WriteFile(manifest.File, raw, 0o644); err != nil {
		return fmt.Errorf("imagestore: %w", err)
	}
	return nil
}

// fdWriter writes to a file descriptor.
type fdWriter struct {
	fd   int
	name string
}

func (w fdWriter) Write(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := unix.Write(w.fd, b[n:])
		if err == unix.EINTR {
			continue
		}
		if err == nil && m == 0 {
			err = io.ErrShortWrite
		}
		if err != nil {
			return n, &os.PathError{Op: "write", Path: w.name, Err: err}
		}
		n += m
	}
	return n, nil
}
