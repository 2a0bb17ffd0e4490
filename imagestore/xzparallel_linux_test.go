package imagestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	fastxz "github.com/mikelolasagasti/xz"
	"github.com/ulikunitz/xz"

	"allium/internal/xzframe"
)

// Tests of the parallel decoding of multi-block .xz files
// (xzindex.go, xzparallel.go).

// blockTree is an image whose tar is about 700 KB: compressible files
// of pseudo-random words and a binary-like one, so that 64 KiB blocks
// make a dozen.
func blockTree(t testing.TB) ([]byte, map[string]string) {
	r := rand.New(rand.NewPCG(5, 6))
	words := strings.Fields("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho")
	files := map[string]string{}
	var ents []ent
	for i := range 12 {
		var sb strings.Builder
		for sb.Len() < 40<<10 {
			sb.WriteString(words[r.IntN(len(words))])
			sb.WriteByte(" \n"[r.IntN(9)/8])
		}
		name := fmt.Sprintf("rootfs/doc/f%02d.txt", i)
		files[name] = sb.String()
		ents = append(ents, fileEnt(name, files[name], 0o644))
	}
	bin := make([]byte, 200<<10)
	for i := range bin {
		bin[i] = byte(r.IntN(256) & r.IntN(256))
	}
	files["rootfs/bin/app"] = string(bin)
	ents = append(ents, fileEnt("rootfs/bin/app", string(bin), 0o755))
	return image(t, ents...), files
}

// xzBlocks compresses data as an .xz stream of blockSize blocks with
// the given check (ulikunitz/xz: its block headers hold no sizes, so
// only the index says where blocks end).
func xzBlocks(t testing.TB, data []byte, blockSize int64, check byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := xz.WriterConfig{BlockSize: blockSize, CheckSum: check}.NewWriter(&buf)
	if err == nil {
		_, err = w.Write(data)
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		t.Fatalf("xz: %v", err)
	}
	return buf.Bytes()
}

// indexOf reads the index of an .xz file, failing t if it has none or
// one block only.
func indexOf(t testing.TB, file []byte) *xzStream {
	t.Helper()
	s := readXZIndex(bytes.NewReader(file), int64(len(file)))
	if s == nil || len(s.blocks) < 2 {
		t.Fatalf("readXZIndex = %+v, want several blocks", s)
	}
	return s
}

func TestReadXZIndex(t *testing.T) {
	tarball, _ := blockTree(t)
	file := xzBlocks(t, tarball, 64<<10, xz.CRC64)
	s := indexOf(t, file)
	if want := (len(tarball) + 64<<10 - 1) / (64 << 10); len(s.blocks) != want {
		t.Errorf("readXZIndex: %d blocks, want %d", len(s.blocks), want)
	}
	var total int64
	for _, b := range s.blocks {
		total += b.Uncompressed
	}
	if total != int64(len(tarball)) || s.check != xzframe.CheckCRC64 {
		t.Errorf("readXZIndex: %d bytes, check %s; want %d, CRC64", total, s.check, len(tarball))
	}
	for name, f := range map[string][]byte{
		"one block":        compress(t, compressions[2].c, tarball),
		"stream padding":   append(bytes.Clone(file), 0, 0, 0, 0),
		"truncated":        file[:len(file)-1],
		"two streams":      append(bytes.Clone(file), file...),
		"blocks too large": xzBlocks(t, make([]byte, xzMaxParallelBlock+2), xzMaxParallelBlock+1, xz.CRC32),
	} {
		if s := readXZIndex(bytes.NewReader(f), int64(len(f))); s != nil && len(s.blocks) > 1 {
			t.Errorf("%s: readXZIndex = %d blocks, want the streaming decoder", name, len(s.blocks))
		}
	}
}

// Regression: a footer whose backward size is 0, before 4 zero bytes of
// "index" whose CRC32 matched, made readXZIndex slice past the index's
// end and panic in the unpack helper; xzframe refuses such an index.
func TestReadXZIndexTinyIndex(t *testing.T) {
	f := xzframe.AppendHeader(nil, xzframe.CheckCRC64)
	f = append(f, make([]byte, 12+4)...) // "blocks", then the index
	f = xzframe.AppendFooter(f, xzframe.CheckCRC64, 4)
	if s := readXZIndex(bytes.NewReader(f), int64(len(f))); s != nil {
		t.Errorf("readXZIndex(an index of 4 bytes) = %+v, want nil", s)
	}
}

// decodeAll reads an .xz file with the parallel decoder.
func decodeAll(t testing.TB, file []byte, workers int) ([]byte, error) {
	t.Helper()
	x := startXZParallel(bytes.NewReader(file), indexOf(t, file), workers)
	defer x.Close()
	return io.ReadAll(x)
}

// The parallel decoder gives the bytes the streaming one does, for each
// check and number of workers, and counts every compressed byte of the
// blocks for the ratio check.
func TestXZParallelRoundTrip(t *testing.T) {
	tarball, _ := blockTree(t)
	for _, check := range []byte{xz.None, xz.CRC32, xz.CRC64, xz.SHA256} {
		file := xzBlocks(t, tarball, 64<<10, check)
		stream, err := fastxz.NewReader(bytes.NewReader(file), 0)
		if err != nil {
			t.Fatal(err)
		}
		want, err := io.ReadAll(stream)
		if err != nil || !bytes.Equal(want, tarball) {
			t.Fatalf("streaming decoder: %d bytes, %v; want the tar's %d", len(want), err, len(tarball))
		}
		for _, workers := range []int{1, 2, 5} {
			x := startXZParallel(bytes.NewReader(file), indexOf(t, file), workers)
			got, err := io.ReadAll(x)
			x.Close()
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("check %#x, %d workers: parallel decoder: %d bytes, %v; want the same %d bytes as streaming",
					check, workers, len(got), err, len(want))
			}
			s := indexOf(t, file)
			last := s.blocks[len(s.blocks)-1]
			if n := x.in.n.Load(); n != last.offset+last.Padded() {
				t.Errorf("check %#x: compressed bytes counted = %d, want %d", check, n, last.offset+last.Padded())
			}
		}
	}
}

// The xz tool's multi-threaded encoder writes what mkimage does: block
// headers with sizes, and an index.
func TestXZParallelXZTool(t *testing.T) {
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("no xz tool (apt-get install xz-utils)")
	}
	tarball, files := blockTree(t)
	cmd := exec.Command("xz", "-T2", "--block-size=65536", "-c")
	cmd.Stdin = bytes.NewReader(tarball)
	file, err := cmd.Output()
	if err != nil {
		t.Fatalf("xz -T2: %v", err)
	}
	got, err := decodeAll(t, file, 2)
	if err != nil || !bytes.Equal(got, tarball) {
		t.Fatalf("parallel decoder of xz -T2's output: %d bytes, %v; want the tar's %d", len(got), err, len(tarball))
	}
	sb := newSandbox(t)
	if _, _, err := Unpack(context.Background(), bytes.NewReader(file), sb.dst, testLimits()); err != nil {
		t.Fatalf("Unpack(xz -T2) = %v", err)
	}
	checkFiles(t, sb.dst, files)
}

// Unpack of a multi-block .xz from a file on disk, as the helper reads
// its stdin, writes every file.
func TestUnpackXZBlocksFromFile(t *testing.T) {
	tarball, files := blockTree(t)
	sb := newSandbox(t)
	if _, _, err := Unpack(context.Background(), fileOf(t, xzBlocks(t, tarball, 64<<10, xz.CRC64)), sb.dst, testLimits()); err != nil {
		t.Fatalf("Unpack = %v", err)
	}
	checkFiles(t, sb.dst, files)
	sb.check(t)
}

// fileOf writes data to a file and opens it, as the helper's stdin is.
func fileOf(t *testing.T, data []byte) *os.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "image.tar.xz")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func checkFiles(t *testing.T, dst string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		if b, err := os.ReadFile(filepath.Join(dst, name)); err != nil || string(b) != body {
			t.Errorf("%s: %d bytes, %v; want %d bytes as archived", name, len(b), err, len(body))
		}
	}
}

// rewriteIndex returns file with its index and footer remade from its
// block records after edit changed them.
func rewriteIndex(t *testing.T, file []byte, edit func(blocks []xzBlock)) []byte {
	s := indexOf(t, file)
	last := s.blocks[len(s.blocks)-1]
	edit(s.blocks)
	var records []xzframe.Record
	for _, b := range s.blocks {
		records = append(records, b.Record)
	}
	return xzframe.AppendTrailer(bytes.Clone(file[:last.offset+last.Padded()]), s.check, records)
}

// Hostile and broken multi-block .xz files are refused, and the error
// names the block (or says the file is truncated).
func TestUnpackXZBlocksHostile(t *testing.T) {
	tarball, _ := blockTree(t)
	file := xzBlocks(t, tarball, 64<<10, xz.CRC64)
	s := indexOf(t, file)
	b2 := s.blocks[1]
	flip := func(at int64) []byte {
		f := bytes.Clone(file)
		f[at] ^= 0x10
		return f
	}
	bomb := xzBlocks(t, image(t, fileEnt("rootfs/zeros", string(make([]byte, 12<<20)), 0o644)), 1<<20, xz.CRC32)
	for _, c := range []struct {
		name, file string
		want       []string
	}{
		{"corrupt data", string(flip(b2.offset + b2.Padded()/2)), []string{"block 2 of ", "its data is corrupt"}},
		{"corrupt check", string(flip(b2.offset + b2.Padded() - 3)), []string{"block 2 of ", "its CRC64 check, where the index puts the block's end, does not match its data"}},
		{"corrupt block header", string(flip(b2.offset + 2)), []string{"block 2 of "}},
		{"truncated", string(file[:b2.offset+100]), []string{"truncated or corrupt"}},
		{"index lies about a size", string(rewriteIndex(t, file, func(b []xzBlock) { b[2].Uncompressed-- })),
			[]string{"block 3 of ", "more than its size in the index"}},
		{"index lies about where blocks end", string(rewriteIndex(t, file, func(b []xzBlock) { b[0].Unpadded += 4; b[1].Unpadded -= 4 })),
			[]string{"block 1 of "}},
		{"a block decompresses past the ratio cap", string(bomb), []string{"compression ratio limit"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			sb := newSandbox(t)
			_, _, err := Unpack(context.Background(), strings.NewReader(c.file), sb.dst, testLimits())
			if err == nil {
				t.Fatal("Unpack = nil, want an error")
			}
			// strings.Reader has no size here: read it again from a file,
			// so that the parallel path runs.
			sb2 := newSandbox(t)
			_, _, err = Unpack(context.Background(), fileOf(t, []byte(c.file)), sb2.dst, testLimits())
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Unpack = %v, want ErrInvalid", err)
			}
			t.Logf("Unpack = %v", err)
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Unpack = %q, want it to say %q", err, w)
				}
			}
			sb.check(t)
			sb2.check(t)
		})
	}
}

// An entry refused early stops the decoding goroutines: Unpack returns,
// and a second archive unpacks as well.
func TestUnpackXZBlocksStopsEarly(t *testing.T) {
	tarball, _ := blockTree(t)
	hostile := tarOf(t, append([]ent{manifestEnt(testManifest), fileEnt("rootfs/../escape", "x", 0o644)},
		fileEnt("rootfs/pad", string(tarball), 0o644))...)
	file := xzBlocks(t, hostile, 64<<10, xz.CRC64)
	indexOf(t, file)
	sb := newSandbox(t)
	_, _, err := Unpack(context.Background(), bytes.NewReader(file), sb.dst, testLimits())
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "escape") {
		t.Fatalf("Unpack = %v, want the escaping entry refused", err)
	}
	sb.check(t)
}
