package main

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// cpioFile is one entry as readCpio finds it.
type cpioFile struct {
	name                        string
	ino, mode, uid, gid, nlink  uint64
	mtime, major, minor, rmajor uint64
	rminor                      uint64
	data                        []byte
}

// readCpio is a small, independent newc reader: it parses every field, so
// a test can check what the kernel will see.
func readCpio(t *testing.T, b []byte) []cpioFile {
	t.Helper()
	var out []cpioFile
	for off := 0; ; {
		f, next, err := readCpioEntry(b, off)
		if err != nil {
			t.Fatalf("readCpio: at offset %d: %v", off, err)
		}
		if f.name == cpioTrailer {
			if rest := b[next:]; len(bytes.Trim(rest, "\x00")) != 0 {
				t.Fatalf("readCpio: %d bytes of garbage after the trailer", len(rest))
			}
			return out
		}
		out = append(out, f)
		off = next
	}
}

func readCpioEntry(b []byte, off int) (cpioFile, int, error) {
	if off%4 != 0 || len(b) < off+cpioHdrLen {
		return cpioFile{}, 0, fmt.Errorf("header at %d: misaligned or truncated (archive is %d bytes)", off, len(b))
	}
	h := b[off : off+cpioHdrLen]
	if string(h[:6]) != "070701" {
		return cpioFile{}, 0, fmt.Errorf("magic %q, want 070701", h[:6])
	}
	var v [13]uint64
	for i := range v {
		n, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
		if err != nil {
			return cpioFile{}, 0, fmt.Errorf("field %d: %v", i, err)
		}
		v[i] = n
	}
	f := cpioFile{ino: v[0], mode: v[1], uid: v[2], gid: v[3], nlink: v[4], mtime: v[5],
		major: v[7], minor: v[8], rmajor: v[9], rminor: v[10]}
	nameEnd := off + cpioHdrLen + int(v[11])
	dataOff := nameEnd + pad4(nameEnd)
	end := dataOff + int(v[6])
	if v[11] == 0 || end > len(b) || b[nameEnd-1] != 0 {
		return cpioFile{}, 0, fmt.Errorf("name or data runs past the end, or name not NUL-terminated")
	}
	f.name = string(b[off+cpioHdrLen : nameEnd-1])
	f.data = b[dataOff:end]
	return f, end + pad4(end), nil
}

func testArchive(t *testing.T) []byte {
	t.Helper()
	a := newArchive()
	steps := []error{
		a.Dir("/tmp", 0o1777),
		a.File("/etc/allium/node.json", 0o600, []byte(`{"name":"x"}`)),
		a.Symlink("/sbin/init", "../init"),
		a.CharDev("/dev/console", 0o600, 5, 1),
		a.File("/init", 0o755, []byte("#!init")),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	var buf bytes.Buffer
	if _, err := a.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestArchiveReadBack(t *testing.T) {
	files := readCpio(t, testArchive(t))
	var names []string
	byName := map[string]cpioFile{}
	for i, f := range files {
		names = append(names, f.name)
		byName[f.name] = f
		if f.uid != 0 || f.gid != 0 || f.mtime != 0 || f.ino != uint64(i+1) {
			t.Errorf("%s: uid %d gid %d mtime %d ino %d, want 0 0 0 %d", f.name, f.uid, f.gid, f.mtime, f.ino, i+1)
		}
	}
	// Parents are filled in, and come before their children.
	want := []string{"dev", "dev/console", "etc", "etc/allium", "etc/allium/node.json", "init", "sbin", "sbin/init", "tmp"}
	if !slices.Equal(names, want) {
		t.Fatalf("archive names = %v, want %v", names, want)
	}
	checks := []struct {
		name         string
		mode         uint64
		data         string
		rmaj, rminor uint64
	}{
		{"dev/console", 0o020600, "", 5, 1},
		{"etc", 0o040755, "", 0, 0},
		{"etc/allium/node.json", 0o100600, `{"name":"x"}`, 0, 0},
		{"init", 0o100755, "#!init", 0, 0},
		{"sbin/init", 0o120777, "../init", 0, 0},
		{"tmp", 0o041777, "", 0, 0},
	}
	for _, c := range checks {
		f := byName[c.name]
		if f.mode != c.mode || string(f.data) != c.data || f.rmajor != c.rmaj || f.rminor != c.rminor {
			t.Errorf("%s = mode %o data %q rdev %d,%d, want mode %o data %q rdev %d,%d",
				c.name, f.mode, f.data, f.rmajor, f.rminor, c.mode, c.data, c.rmaj, c.rminor)
		}
	}
}

func TestPermBits(t *testing.T) {
	tests := []struct {
		in   fs.FileMode
		want uint32
	}{
		{0o755, 0o755},
		{0o1777, 0o1777}, // raw sticky bit, as rootfs.Dirs writes /tmp
		{fs.ModeSticky | 0o777, 0o1777},
		{fs.ModeSetuid | fs.ModeSetgid | 0o755, 0o6755},
		{fs.ModeDir | 0o700, 0o700},
	}
	for _, tt := range tests {
		if got := permBits(tt.in); got != tt.want {
			t.Errorf("permBits(%v) = %o, want %o", tt.in, got, tt.want)
		}
	}
}

func TestArchiveReproducible(t *testing.T) {
	a, b := testArchive(t), testArchive(t)
	if !bytes.Equal(a, b) {
		t.Errorf("two archives of the same entries differ")
	}
}

func TestArchiveRejects(t *testing.T) {
	a := newArchive()
	if err := a.File("/a", 0o644, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.File("/a", 0o644, nil); err == nil {
		t.Errorf("File(/a) twice: no error")
	}
	for _, bad := range []string{"", "/", "/a/../b", "/a/", "a//b"} {
		if err := a.File(bad, 0o644, nil); err == nil {
			t.Errorf("File(%q): no error", bad)
		}
	}
}

// TestArchiveGNUCpio lists the archive with GNU cpio, an independent
// reader, and checks the device node and the symlink.
func TestArchiveGNUCpio(t *testing.T) {
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("no cpio in $PATH (apt-get install cpio)")
	}
	cmd := exec.Command(cpio, "-itv", "--quiet")
	cmd.Stdin = bytes.NewReader(testArchive(t))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -itv: %v", err)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		lines[f[len(f)-1]] = l
	}
	if l := lines["dev/console"]; !strings.HasPrefix(l, "crw-------") || !strings.Contains(l, "5,   1") {
		t.Errorf("cpio -itv dev/console = %q, want crw------- ... 5,   1", l)
	}
	if l := lines["../init"]; !strings.HasPrefix(l, "lrwxrwxrwx") || !strings.Contains(l, "sbin/init -> ../init") {
		t.Errorf("cpio -itv sbin/init = %q, want lrwxrwxrwx ... sbin/init -> ../init", l)
	}
	if l := lines["tmp"]; !strings.HasPrefix(l, "drwxrwxrwt") {
		t.Errorf("cpio -itv tmp = %q, want drwxrwxrwt (sticky)", l)
	}
}

func TestCompressRoundTrip(t *testing.T) {
	for _, method := range strings.Split(compressionNames(), "|") {
		a := newArchive()
		a.File("/init", 0o755, []byte("#!init"))
		z, err := compressArchive(a, method)
		if err != nil {
			t.Fatalf("compressArchive(%s): %v", method, err)
		}
		got, err := decompress(method, z)
		if err != nil || len(readCpio(t, got)) != 1 {
			t.Errorf("decompress(compressArchive(%s)) = %d bytes, %v", method, len(got), err)
		}
		// The kernel's xz decoder rejects a check it cannot verify: the
		// stream flags (bytes 6-7 of the header) must say CRC32.
		if method == "xz" && (len(z) < 8 || z[7] != 0x01) {
			t.Errorf("compressArchive(xz): check type %#x, want 0x01 (CRC32)", z[7])
		}
	}
	if _, err := compressArchive(newArchive(), "lz4"); err == nil {
		t.Errorf("compressArchive(lz4): no error")
	}
}

// decompress reverses compressArchive.
func decompress(method string, z []byte) ([]byte, error) {
	var r io.Reader
	var err error
	switch method {
	case "none":
		return z, nil
	case "gzip":
		r, err = gzip.NewReader(bytes.NewReader(z))
	case "zstd":
		r, err = zstd.NewReader(bytes.NewReader(z))
	case "xz":
		r, err = xz.NewReader(bytes.NewReader(z))
	default:
		return nil, fmt.Errorf("unknown method %q", method)
	}
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}
