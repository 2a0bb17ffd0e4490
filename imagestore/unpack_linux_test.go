package imagestore

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"allium/manifest"
)

// goodTree has what real images hold: directories with odd modes,
// absolute and relative symlinks (and ".." in them), hard links,
// implicit parents, a fifo, "./" names, duplicates and owners.
func goodTree() []ent {
	owned := fileEnt("rootfs/etc/owned", "mine", 0o640)
	owned.h.Uid, owned.h.Gid = 1234, 5678
	newer := fileEnt("rootfs/bin/busybox", "#!busybox", 0o755)
	newer.h.ModTime = testTime.Add(time.Hour)
	return []ent{
		dirEnt("rootfs/bin/", 0o755),
		newer,
		symlinkEnt("rootfs/bin/sh", "/bin/busybox"),
		symlinkEnt("rootfs/bin/ls", "busybox"),
		fileEnt("rootfs/usr/lib/libx.so.1", "ELF", 0o644), // implicit parents
		symlinkEnt("rootfs/usr/lib/libx.so", "../lib/./libx.so.1"),
		symlinkEnt("rootfs/lib", "usr/lib"),
		symlinkEnt("rootfs/dangling", "/no/such/file"),
		fileEnt("rootfs/etc/passwd", "root:x:0:0::/:/bin/sh\n", 0o644),
		hardlinkEnt("rootfs/etc/passwd.hard", "rootfs/etc/passwd"),
		owned,
		dirEnt("rootfs/tmp/", 0o1777),
		dirEnt("rootfs/var/mail/", 0o2775), // setgid on a directory only passes the group on
		nodeEnt("rootfs/run/fifo", tar.TypeFifo, 0, 0),
		fileEnt("./rootfs/dotted", "dot", 0o600),
		fileEnt("rootfs/dup", "one", 0o644),
		fileEnt("rootfs/dup", "two", 0o600),
		symlinkEnt("rootfs/relinked", "/etc/passwd"),
		fileEnt("rootfs/relinked", "a file replaces a symlink, not its target", 0o644),
		dirEnt("rootfs/ro/", 0o555),
		fileEnt("rootfs/ro/file", "read only", 0o444),
		{tar.Header{Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "x"}}, ""},
	}
}

func TestUnpackGood(t *testing.T) {
	archive := image(t, goodTree()...)
	for _, c := range append(compressions, moreCompressions...) {
		t.Run(c.name, func(t *testing.T) {
			sb := newSandbox(t)
			m, st, err := Unpack(context.Background(), bytes.NewReader(compress(t, c.c, archive)), sb.dst, testLimits())
			if err != nil {
				t.Fatalf("Unpack = %v", err)
			}
			want := &manifest.Manifest{Version: 1, Name: "app", Command: []string{"/bin/app", "-v"}}
			if !reflect.DeepEqual(m, want) {
				t.Errorf("Unpack manifest = %+v, want %+v", m, want)
			}
			if want := (Stats{Entries: 24, Bytes: 97}); st.Entries != want.Entries || st.Bytes != want.Bytes {
				t.Errorf("Unpack stats = %+v, want %d entries, %d bytes", st, want.Entries, want.Bytes)
			}
			checkGoodTree(t, sb.dst, testManifest)
			sb.check(t)
		})
	}
}

func checkGoodTree(t *testing.T, dst, wantManifest string) {
	t.Helper()
	if b, err := os.ReadFile(filepath.Join(dst, manifest.File)); string(b) != wantManifest {
		t.Errorf("manifest.json = %q, %v; want %q", b, err, wantManifest)
	}
	r := filepath.Join(dst, manifest.RootfsDir)
	for name, want := range map[string]string{
		"bin/busybox": "#!busybox", "usr/lib/libx.so.1": "ELF", "etc/passwd.hard": "root:x:0:0::/:/bin/sh\n",
		"dotted": "dot", "dup": "two", "relinked": "a file replaces a symlink, not its target", "ro/file": "read only",
		"lib/libx.so": "ELF", // through two relative symlinks
	} {
		if b, err := os.ReadFile(filepath.Join(r, name)); string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
	for name, want := range map[string]string{
		"bin/sh": "/bin/busybox", "bin/ls": "busybox", "usr/lib/libx.so": "../lib/./libx.so.1",
		"lib": "usr/lib", "dangling": "/no/such/file",
	} {
		if got, err := os.Readlink(filepath.Join(r, name)); got != want {
			t.Errorf("Readlink(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
	for name, want := range map[string]fs.FileMode{
		".": fs.ModeDir | 0o755, "bin": fs.ModeDir | 0o755, "usr": fs.ModeDir | 0o755, "usr/lib": fs.ModeDir | 0o755,
		"bin/busybox": 0o755, "etc/owned": 0o640, "dotted": 0o600, "dup": 0o600, "ro": fs.ModeDir | 0o555,
		"ro/file": 0o444, "tmp": fs.ModeDir | fs.ModeSticky | 0o777, "var/mail": fs.ModeDir | fs.ModeSetgid | 0o775,
		"run/fifo": fs.ModeNamedPipe | 0o666, "bin/sh": fs.ModeSymlink | 0o777,
	} {
		if fi, err := os.Lstat(filepath.Join(r, name)); err != nil || fi.Mode() != want {
			t.Errorf("Lstat(%s) mode = %v, %v; want %v", name, modeOf(fi), err, want)
		}
	}
	for name, want := range map[string]time.Time{
		".": testTime, "bin": testTime, "bin/busybox": testTime.Add(time.Hour), "bin/sh": testTime,
		"ro": testTime, "ro/file": testTime, "run/fifo": testTime,
	} {
		if fi, err := os.Lstat(filepath.Join(r, name)); err != nil || !fi.ModTime().Equal(want) {
			t.Errorf("Lstat(%s) mtime = %v, %v; want %v", name, modTime(fi), err, want)
		}
	}
	a, _ := os.Stat(filepath.Join(r, "etc/passwd"))
	b, _ := os.Stat(filepath.Join(r, "etc/passwd.hard"))
	if a == nil || b == nil || !os.SameFile(a, b) {
		t.Errorf("etc/passwd.hard is not a hard link of etc/passwd")
	}
	if os.Geteuid() == 0 {
		fi, err := os.Stat(filepath.Join(r, "etc/owned"))
		if st, ok := fi.Sys().(*syscall.Stat_t); err != nil || !ok || st.Uid != 1234 || st.Gid != 5678 {
			t.Errorf("etc/owned owner = %+v, %v; want 1234:5678", fi.Sys(), err)
		}
	}
}

func modeOf(fi fs.FileInfo) any {
	if fi == nil {
		return nil
	}
	return fi.Mode()
}

func modTime(fi fs.FileInfo) any {
	if fi == nil {
		return nil
	}
	return fi.ModTime()
}

// hostile is one refused archive: build makes its tar; entry is the
// entry the error must name ("" for none) and want a part of the error.
type hostile struct {
	name       string
	build      func(t testing.TB) []byte
	lim        func(*Limits)
	entry      string
	want       string
	compressed bool // only meaningful for compressed archives
}

const devManifest = `{"version": 1, "name": "app", "command": ["/x"], "allow": {"devices": true, "setuid": true}}`

func withManifest(json string, ents ...ent) func(testing.TB) []byte {
	return func(t testing.TB) []byte { return tarOf(t, append([]ent{manifestEnt(json)}, ents...)...) }
}

func imageOf(ents ...ent) func(testing.TB) []byte {
	return func(t testing.TB) []byte { return image(t, ents...) }
}

func setuidEnt(name string, mode int64) ent { return fileEnt(name, "#!", mode) }

var hostiles = []hostile{
	{name: "dotdot", build: imageOf(fileEnt("rootfs/../../canary", "pwned", 0o644)),
		entry: "rootfs/../../canary", want: "path escapes the image"},
	{name: "dotdot-deep", build: imageOf(fileEnt("rootfs/a/../../../target/x", "pwned", 0o644)),
		entry: "rootfs/a/../../../target/x", want: "path escapes the image"},
	{name: "absolute", build: imageOf(fileEnt("/etc/passwd", "pwned", 0o644)),
		entry: "/etc/passwd", want: "path escapes the image"},
	{name: "outside-rootfs", build: imageOf(fileEnt("etc/passwd", "pwned", 0o644)),
		entry: "etc/passwd", want: "not manifest.json nor under rootfs/"},
	{name: "symlink-escapes", build: imageOf(symlinkEnt("rootfs/evil", "../../target")),
		entry: "rootfs/evil", want: `symlink to "../../target": escapes the image`},
	{name: "symlink-escapes-deep", build: imageOf(symlinkEnt("rootfs/a/b/evil", "../../../../canary")),
		entry: "rootfs/a/b/evil", want: "escapes the image"},
	{name: "symlink-absolute-dotdot", build: imageOf(symlinkEnt("rootfs/evil", "/../target")),
		entry: "rootfs/evil", want: "escapes the image"},
	{name: "symlink-dotdot-after-link", build: imageOf(symlinkEnt("rootfs/a/s", "/"),
		symlinkEnt("rootfs/a/evil", "s/../../target")),
		entry: "rootfs/a/evil", want: "escapes the image"},
	{name: "write-through-symlink", build: imageOf(symlinkEnt("rootfs/lnk", "/"),
		fileEnt("rootfs/lnk/x", "pwned", 0o644)),
		entry: "rootfs/lnk/x", want: "rootfs/lnk is a symlink: refusing to write through it"},
	{name: "write-through-symlink-dir", build: imageOf(symlinkEnt("rootfs/lnk", "sub"), dirEnt("rootfs/sub/", 0o755),
		dirEnt("rootfs/lnk/d/", 0o755)),
		entry: "rootfs/lnk/d/", want: "refusing to write through it"},
	{name: "write-through-file", build: imageOf(fileEnt("rootfs/f", "", 0o644), fileEnt("rootfs/f/x", "", 0o644)),
		entry: "rootfs/f/x", want: "rootfs/f is not a directory"},
	{name: "hardlink-escapes", build: imageOf(hardlinkEnt("rootfs/h", "rootfs/../../canary")),
		entry: "rootfs/h", want: `hard link to "rootfs/../../canary": outside rootfs/`},
	{name: "hardlink-absolute", build: imageOf(hardlinkEnt("rootfs/h", "/etc/passwd")),
		entry: "rootfs/h", want: "outside rootfs/"},
	{name: "hardlink-manifest", build: imageOf(hardlinkEnt("rootfs/h", "manifest.json")),
		entry: "rootfs/h", want: "outside rootfs/"},
	{name: "hardlink-missing", build: imageOf(hardlinkEnt("rootfs/h", "rootfs/later"), fileEnt("rootfs/later", "", 0o644)),
		entry: "rootfs/h", want: "not a file earlier in the archive"},
	{name: "hardlink-to-dir", build: imageOf(dirEnt("rootfs/d/", 0o755), hardlinkEnt("rootfs/h", "rootfs/d")),
		entry: "rootfs/h", want: "not a file earlier in the archive"},
	{name: "hardlink-to-symlink", build: imageOf(symlinkEnt("rootfs/a/s", "../x"), hardlinkEnt("rootfs/s", "rootfs/a/s")),
		entry: "rootfs/s", want: "a symlink"},
	{name: "hardlink-through-symlink", build: imageOf(symlinkEnt("rootfs/lnk", "/"), fileEnt("rootfs/f", "", 0o644),
		hardlinkEnt("rootfs/lnk/h", "rootfs/f")),
		entry: "rootfs/lnk/h", want: "refusing to write through it"},
	{name: "device-not-asked", build: imageOf(nodeEnt("rootfs/dev/sda", tar.TypeBlock, 8, 0)),
		entry: "rootfs/dev/sda", want: "the manifest does not ask for devices (allow.devices)"},
	{name: "device-not-allowed", build: withManifest(devManifest, nodeEnt("rootfs/dev/mem", tar.TypeChar, 1, 1)),
		entry: "rootfs/dev/mem", want: "this node does not allow devices"},
	{name: "setuid-not-asked", build: imageOf(setuidEnt("rootfs/bin/su", 0o4755)),
		entry: "rootfs/bin/su", want: "mode 04755 is setuid or setgid; the manifest does not ask for that (allow.setuid)"},
	{name: "setgid-not-allowed", build: withManifest(devManifest, setuidEnt("rootfs/bin/wall", 0o2755)),
		entry: "rootfs/bin/wall", want: "this node does not allow that"},
	{name: "unknown-type", build: imageOf(ent{tar.Header{Name: "rootfs/x", Typeflag: 'Z', Mode: 0o644}, ""}),
		entry: "rootfs/x", want: `tar entry type 'Z'`},
	{name: "contiguous-type", build: imageOf(ent{tar.Header{Name: "rootfs/x", Typeflag: tar.TypeCont, Mode: 0o644}, ""}),
		entry: "rootfs/x", want: `tar entry type '7'`},
	{name: "manifest-late", build: func(t testing.TB) []byte {
		return tarOf(t, fileEnt("rootfs/x", "", 0o644), manifestEnt(testManifest))
	}, entry: "rootfs/x", want: "comes before manifest.json; manifest.json must be the archive's first entry"},
	{name: "manifest-missing", build: func(t testing.TB) []byte { return tarOf(t, dirEnt("./", 0o755)) },
		want: "manifest.json: missing"},
	{name: "manifest-twice", build: imageOf(manifestEnt(testManifest)),
		entry: "manifest.json", want: "a second manifest.json"},
	{name: "manifest-bad", build: withManifest(`{"version": 1, "name": "app", "command": ["/bin/app"], "restart": {"delay": "5x"}}`),
		want: `manifest.json: restart.delay "5x": not a duration (e.g. "5s")`},
	{name: "rootfs-not-dir", build: withManifest(testManifest, fileEnt("rootfs", "", 0o644)),
		entry: "rootfs", want: "rootfs/ must be a directory"},
	{name: "dir-replaced", build: imageOf(dirEnt("rootfs/d/", 0o755), fileEnt("rootfs/d/f", "x", 0o644), fileEnt("rootfs/d", "", 0o644)),
		entry: "rootfs/d", want: "would replace a directory"},
	{name: "dir-replaced-by-symlink", build: imageOf(dirEnt("rootfs/d/", 0o755), symlinkEnt("rootfs/d", "/")),
		entry: "rootfs/d", want: "would replace a directory"},
	{name: "owner-out-of-range", build: imageOf(ent{tar.Header{Name: "rootfs/x", Typeflag: tar.TypeReg, Mode: 0o644, Uid: 1 << 40}, ""}),
		entry: "rootfs/x", want: "IDs go from 0 to 4294967294"},
	{name: "truncated-tar", build: func(t testing.TB) []byte {
		b := image(t, fileEnt("rootfs/big", strings.Repeat("x", 5000), 0o644))
		return b[:len(b)-1024-2000]
	}, entry: "rootfs/big", want: "tar: truncated"},
	{name: "no-end-marker", build: func(t testing.TB) []byte {
		b := image(t, fileEnt("rootfs/f", "x", 0o644))
		return b[:len(b)-1024]
	}, want: `after entry "rootfs/f": tar: truncated`},
	{name: "corrupt-header", build: func(t testing.TB) []byte {
		b := image(t, fileEnt("rootfs/f", "x", 0o644))
		b[3*512+150] ^= 0xff // the third header's checksum (manifest, its data, rootfs/, rootfs/f)
		return b
	}, want: `after entry "rootfs/": tar: archive/tar: invalid tar header: the archive is corrupt`},
	{name: "max-bytes", build: imageOf(fileEnt("rootfs/big", strings.Repeat("x", 2000), 0o644)),
		lim: func(l *Limits) { l.MaxBytes = 1000 }, entry: "rootfs/big", want: "past 1000 bytes of files (MaxBytes)"},
	{name: "max-entries", build: imageOf(fileEnt("rootfs/a", "", 0o644), fileEnt("rootfs/b", "", 0o644)),
		lim: func(l *Limits) { l.MaxEntries = 3 }, entry: "rootfs/b", want: "more than 3 entries (MaxEntries)"},
	{name: "max-ratio", build: imageOf(fileEnt("rootfs/zeros", strings.Repeat("\x00", RatioGrace+4<<20), 0o644)),
		entry: "rootfs/zeros", want: "over the compression ratio limit of 100:1 (MaxRatio)", compressed: true},
	{name: "truncated-compression", build: imageOf(fileEnt("rootfs/f", strings.Repeat("abc", 100000), 0o644)),
		want: "truncated or corrupt", compressed: true},
}

// buildHostile builds a case's archive in compression c: truncated
// compression cuts the compressed stream in half.
func buildHostile(t testing.TB, h hostile, c compression) []byte {
	b := compress(t, c.c, h.build(t))
	if h.name == "truncated-compression" {
		b = b[:len(b)/2]
	}
	return b
}

func (h hostile) limits() Limits {
	l := testLimits()
	if h.lim != nil {
		h.lim(&l)
	}
	return l
}

// TestUnpackHostile: each hostile archive in each compression is refused
// with an error naming the entry, nothing outside dst changes, and a
// Store.Write of it leaves no image, no part and nothing in staging.
func TestUnpackHostile(t *testing.T) {
	for _, h := range hostiles {
		for _, c := range compressions {
			if h.compressed && c.c == nil {
				continue
			}
			t.Run(h.name+"/"+c.name, func(t *testing.T) {
				archive := buildHostile(t, h, c)
				sb := newSandbox(t)
				_, _, err := Unpack(context.Background(), bytes.NewReader(archive), sb.dst, h.limits())
				checkHostileError(t, "Unpack", err, h)
				sb.check(t)
				checkStoreRefuses(t, archive, h)
			})
		}
	}
}

func checkHostileError(t *testing.T, what string, err error, h hostile) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), h.want) || !strings.HasPrefix(err.Error(), "imagestore: ") {
		t.Errorf("%s = %v, want an error with %q", what, err, h.want)
	}
	if h.entry != "" && (err == nil || !strings.Contains(err.Error(), "entry "+strconv.Quote(h.entry))) {
		t.Errorf("%s = %v, want it to name entry %q", what, err, h.entry)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("%s = %v, want an ErrInvalid", what, err)
	}
}

func checkStoreRefuses(t *testing.T, archive []byte, h hostile) {
	t.Helper()
	s := openStore(t, InProcess{})
	s.Limits = func(int64) Limits { return h.limits() }
	d := digestOf(archive)
	_, err := s.Write(context.Background(), d, 0, int64(len(archive)), bytes.NewReader(archive))
	if !(h.name == "max-bytes" && errors.Is(err, ErrTooLarge)) { // the upload can be over MaxBytes already
		checkHostileError(t, "Store.Write", err, h)
	}
	checkStoreEmpty(t, s)
}
