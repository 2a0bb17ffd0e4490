package imagestore

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"allium/manifest"

	"github.com/mholt/archives"
)

// Archives made in the tests, with archive/tar and mholt/archives'
// compressors.

// ent is one tar entry; a regular file's Size is set from body.
type ent struct {
	h    tar.Header
	body string
}

var testTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

const testManifest = `{"version": 1, "name": "app", "command": ["/bin/app", "-v"]}`

func manifestEnt(json string) ent {
	return ent{tar.Header{Name: manifest.File, Typeflag: tar.TypeReg, Mode: 0o644}, json}
}

func fileEnt(name, body string, mode int64) ent {
	return ent{tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode}, body}
}

func dirEnt(name string, mode int64) ent {
	return ent{tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: mode}, ""}
}

func symlinkEnt(name, target string) ent {
	return ent{tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}, ""}
}

func hardlinkEnt(name, target string) ent {
	return ent{tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target, Mode: 0o644}, ""}
}

func nodeEnt(name string, typ byte, major, minor int64) ent {
	return ent{tar.Header{Name: name, Typeflag: typ, Mode: 0o666, Devmajor: major, Devminor: minor}, ""}
}

// image is a tar of manifest.json (testManifest) and ents.
func image(t testing.TB, ents ...ent) []byte {
	return tarOf(t, append([]ent{manifestEnt(testManifest), dirEnt("rootfs/", 0o755)}, ents...)...)
}

func tarOf(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.h
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if h.ModTime.IsZero() && h.Typeflag != tar.TypeXGlobalHeader {
			h.ModTime = testTime
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %q: %v", h.Name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatalf("tar %q: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// compressions are the formats of the hostile table; moreCompressions
// the others mholt/archives writes, for the good archive.
type compression struct {
	name string
	c    archives.Compressor // nil: none
}

var (
	compressions = []compression{
		{"none", nil}, {"gz", archives.Gz{}}, {"xz", archives.Xz{}}, {"zst", archives.Zstd{}},
		{"bz2", archives.Bz2{}}, {"lz4", archives.Lz4{}},
	}
	moreCompressions = []compression{
		{"lz", archives.Lzip{}}, {"sz", archives.Sz{}}, {"mz", archives.MinLZ{}}, {"zz", archives.Zlib{}},
		{"br", archives.Brotli{}},
	}
)

func compress(t testing.TB, c archives.Compressor, data []byte) []byte {
	t.Helper()
	if c == nil {
		return data
	}
	var buf bytes.Buffer
	w, err := c.OpenWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// testLimits are generous but small enough for tests.
func testLimits() Limits {
	return Limits{MaxBytes: 64 << 20, MaxEntries: 1000, MaxRatio: 100}
}

// sandbox is a directory holding dst (empty), a canary file and an
// empty target directory: hostile entries aim at the last two.
type sandbox struct {
	base, dst string
}

const canaryText = "canary: must not change\n"

func newSandbox(t testing.TB) sandbox {
	t.Helper()
	base := t.TempDir()
	s := sandbox{base, filepath.Join(base, "dst")}
	for _, d := range []string{s.dst, filepath.Join(base, "target")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "canary"), []byte(canaryText), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeAll(s.dst) }) // read-only directories, when not root
	return s
}

// check fails t if anything outside dst changed.
func (s sandbox) check(t testing.TB) {
	t.Helper()
	entries, err := os.ReadDir(s.base)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"canary", "dst", "target"}; !slices.Equal(names, want) {
		t.Errorf("next to dst: %q, want %q", names, want)
	}
	if b, err := os.ReadFile(filepath.Join(s.base, "canary")); err != nil || string(b) != canaryText {
		t.Errorf("canary = %q, %v; want %q", b, err, canaryText)
	}
	if fi, err := os.Lstat(filepath.Join(s.base, "canary")); err != nil || fi.Mode() != 0o644 {
		t.Errorf("canary mode = %v, %v; want -rw-r--r--", fi.Mode(), err)
	}
	if entries, err := os.ReadDir(filepath.Join(s.base, "target")); err != nil || len(entries) != 0 {
		t.Errorf("target holds %v (%v), want nothing", entries, err)
	}
}
