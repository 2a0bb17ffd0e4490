package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"allium/internal/xzframe"
)

// Every compression the node identifies round-trips through
// mholt/archives to the same entries as the uncompressed tar.
func TestPackCompressions(t *testing.T) {
	dir := makeTree(t)
	outDir := t.TempDir()
	pack := func(name string, extra ...string) []tarEntry {
		t.Helper()
		out := filepath.Join(outDir, name)
		args := append([]string{"pack", dir, "-o", out, "--cmd", "/bin/app", "--name", "app"}, extra...)
		if code, _, stderr := runMkimage(t, args...); code != 0 {
			t.Fatalf("mkimage %q = %d; stderr:\n%s", args, code, stderr)
		}
		return readImage(t, out)
	}
	want := pack("plain.tar")
	names := []string{"a.txz", "a.tar.xz", "a.tgz", "a.tar.gz", "a.tar.zst", "a.tzst", "a.tar.bz2", "a.tbz2", "a.tar.lz4"}
	for _, name := range names {
		if got := pack(name); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: entries differ from the plain tar's", name)
		}
	}
	// --compress wins over the name; archives identifies by content.
	if got := pack("forced.tar", "--compress", "zstd"); !reflect.DeepEqual(got, want) {
		t.Errorf("--compress zstd: entries differ from the plain tar's")
	}
}

// randomTree writes n bytes of incompressible files, so the image is
// larger than a few blocks.
func randomTree(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; n > 0; i++ {
		b := make([]byte, min(n, 100_000))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		n -= len(b)
		must(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", i)), b, 0o644))
	}
	return dir
}

// The multi-block xz and zstd outputs decompress to the plain tar's
// bytes with the standard CLIs, and have more than one block or frame.
func TestPackMultiBlock(t *testing.T) {
	dir := randomTree(t, 600_000)
	outDir := t.TempDir()
	pack := func(name string) string {
		out := filepath.Join(outDir, name)
		args := []string{"pack", dir, "-o", out, "--cmd", "/x", "--name", "x", "--block-size", "128K"}
		if code, _, stderr := runMkimage(t, args...); code != 0 {
			t.Fatalf("mkimage %q = %d; stderr:\n%s", args, code, stderr)
		}
		return out
	}
	plain, err := os.ReadFile(pack("x.tar"))
	must(t, err)
	tests := []struct {
		name, tool string
		count      func([]byte) (int, error)
	}{
		{"x.txz", "xz", xzBlocks},
		{"x.tar.zst", "zstd", zstdFrames},
	}
	for _, tt := range tests {
		out := pack(tt.name)
		data, err := os.ReadFile(out)
		must(t, err)
		n, err := tt.count(data)
		if want := (len(plain) + 128<<10 - 1) / (128 << 10); err != nil || n != want {
			t.Errorf("%s: %d blocks, %v; want %d (%d bytes of tar in 128K blocks)", tt.name, n, err, want, len(plain))
		}
		checkCLI(t, tt.tool, out, plain)
	}
}

// checkCLI decompresses file with `tool -dc` and compares the result
// with want, if the tool is installed.
func checkCLI(t *testing.T, tool, file string, want []byte) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Logf("%s not installed (apt-get install %s): not checking %s with it", tool, tool, file)
		return
	}
	got, err := exec.Command(tool, "-dc", file).Output()
	if err != nil {
		t.Errorf("%s -dc %s: %v", tool, file, err)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s -dc %s: %d bytes that differ from the plain tar's %d", tool, file, len(got), len(want))
	}
}

// xzBlocks counts the blocks of a single-stream xz file from its index,
// and checks that every block header holds both sizes (what a parallel
// reader needs).
func xzBlocks(b []byte) (int, error) {
	if len(b) < xzframe.HeaderSize+xzframe.FooterSize {
		return 0, fmt.Errorf("%d bytes: no xz header and footer", len(b))
	}
	_, indexSize, err := xzframe.ParseFooter(b[len(b)-xzframe.FooterSize:])
	if err != nil {
		return 0, err
	}
	indexAt := int64(len(b)) - xzframe.FooterSize - indexSize
	if indexAt < xzframe.HeaderSize {
		return 0, fmt.Errorf("index of %d bytes in a file of %d", indexSize, len(b))
	}
	records, err := xzframe.ParseIndex(b[indexAt : indexAt+indexSize])
	if err != nil {
		return 0, err
	}
	pos := int64(xzframe.HeaderSize)
	for i, r := range records {
		if pos+1 >= indexAt {
			return 0, fmt.Errorf("block %d starts at %d, past the index at %d", i, pos, indexAt)
		}
		if flags := b[pos+1]; flags&0xc0 != 0xc0 {
			return 0, fmt.Errorf("block %d: header flags %#x: sizes missing", i, flags)
		}
		pos += r.Padded()
	}
	if pos != indexAt {
		return 0, fmt.Errorf("blocks end at %d, index starts at %d", pos, indexAt)
	}
	return len(records), nil
}

// zstdFrames counts the frames of a zstd file by walking the frame and
// block headers (RFC 8878, 3.1.1), and checks that each frame header
// holds its content size.
func zstdFrames(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		if len(b) < 6 || binary.LittleEndian.Uint32(b) != 0xfd2fb528 {
			return n, fmt.Errorf("frame %d: bad magic", n)
		}
		fhd := b[4]
		if fhd>>6 == 0 && fhd&0x20 == 0 {
			return n, fmt.Errorf("frame %d: no content size", n)
		}
		b = b[4+zstdHeaderLen(fhd):]
		for last := false; !last; {
			h := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
			size := int(h >> 3)
			last = h&1 == 1
			if (h>>1)&3 == 1 { // RLE: one byte
				size = 1
			}
			b = b[3+size:]
		}
		if fhd&0x04 != 0 {
			b = b[4:] // content checksum
		}
		n++
	}
	return n, nil
}

// zstdHeaderLen is the length of a frame header after the magic.
func zstdHeaderLen(fhd byte) int {
	single := fhd&0x20 != 0
	n := 1 + []int{0, 1, 2, 4}[fhd&3]
	if !single {
		n++ // window descriptor
	}
	fcs := []int{0, 2, 4, 8}[fhd>>6]
	if fcs == 0 && single {
		fcs = 1
	}
	return n + fcs
}

func TestLZMA2DictByte(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want byte
	}{{4096, 0}, {4097, 1}, {6144, 1}, {1 << 20, 16}, {4 << 20, 20}, {6 << 20, 21}, {8 << 20, 22}} {
		if got := lzma2DictByte(tt.n); got != tt.want {
			t.Errorf("lzma2DictByte(%d) = %d, want %d", tt.n, got, tt.want)
		}
	}
}

func TestCompressionOf(t *testing.T) {
	for _, tt := range []struct{ name, base, method string }{
		{"app.txz", "app", "xz"}, {"app.tar.xz", "app", "xz"}, {"a.b.tar.gz", "a.b", "gzip"},
		{"x.tzst", "x", "zstd"}, {"x.tar.zst", "x", "zstd"}, {"x.tar.bz2", "x", "bzip2"},
		{"x.tar.lz4", "x", "lz4"}, {"x.tar", "x", "none"}, {"x.zip", "x.zip", ""}, {".tar", ".tar", ""},
	} {
		base, method, _ := compressionOf(tt.name)
		if base != tt.base || method != tt.method {
			t.Errorf("compressionOf(%q) = %q, %q; want %q, %q", tt.name, base, method, tt.base, tt.method)
		}
	}
}
