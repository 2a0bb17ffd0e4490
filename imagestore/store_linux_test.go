package imagestore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func openStore(t *testing.T, u Unpacker) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), u, nil)
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	s.Limits = func(int64) Limits { return testLimits() }
	t.Cleanup(func() { removeAll(s.root) })
	return s
}

// checkStoreEmpty fails t unless staging, uploads and images are empty.
func checkStoreEmpty(t *testing.T, s *Store) {
	t.Helper()
	for _, d := range []string{stagingDir, uploadsDir, imagesDir} {
		if entries, err := os.ReadDir(s.path(d)); err != nil || len(entries) != 0 {
			t.Errorf("%s holds %v (%v), want nothing", d, entries, err)
		}
	}
}

// appArchive is a small good image, gzipped; name tells images apart.
func appArchive(t *testing.T, name string) []byte {
	return compress(t, compressions[1].c, tarOf(t,
		manifestEnt(strings.Replace(testManifest, `"app"`, `"`+name+`"`, 1)),
		dirEnt("rootfs/", 0o755), fileEnt("rootfs/bin/busybox", strings.Repeat("busybox ", 4000), 0o755),
		symlinkEnt("rootfs/bin/sh", "/bin/busybox")))
}

func TestStoreWriteOnce(t *testing.T) {
	s := openStore(t, InProcess{})
	a := appArchive(t, "app")
	d, n := digestOf(a), int64(len(a))
	before := time.Now()
	if kept, err := s.Write(context.Background(), d, 0, n, bytes.NewReader(a)); kept != n || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", kept, err, n)
	}
	if !s.Has(d) {
		t.Errorf("Has(%s) = false after the upload", d)
	}
	info, err := s.Image(d)
	if err != nil || info.Digest != d || info.Name != "app" || info.Size != n || info.Created.Before(before.Add(-time.Second)) {
		t.Errorf("Image = %+v, %v; want %s, app, %d bytes, created now", info, err, d, n)
	}
	if list, err := s.List(); err != nil || !reflect.DeepEqual(list, []Info{info}) {
		t.Errorf("List = %+v, %v; want [%+v]", list, err, info)
	}
	if m, err := s.Manifest(d); err != nil || m.Name != "app" {
		t.Errorf("Manifest = %+v, %v; want app's", m, err)
	}
	if got, err := os.Readlink(filepath.Join(s.RootFS(d), "bin/sh")); got != "/bin/busybox" {
		t.Errorf("RootFS/bin/sh = %q, %v; want /bin/busybox", got, err)
	}
	if off := s.Offset(d); off != 0 {
		t.Errorf("Offset after the upload = %d, want 0 (no part)", off)
	}
	if kept, err := s.Write(context.Background(), d, 0, n, strings.NewReader("")); kept != n || err != nil {
		t.Errorf("Write of an image already there = %d, %v; want %d, nil", kept, err, n)
	}
	for _, dir := range []string{stagingDir, uploadsDir} {
		if entries, _ := os.ReadDir(s.path(dir)); len(entries) != 0 {
			t.Errorf("%s holds %v after the upload", dir, entries)
		}
	}
}

// failingReader yields data, then fails with err (nil: a clean EOF).
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	if err == io.EOF && f.err != nil {
		err = f.err
	}
	return n, err
}

var errDropped = errors.New("connection dropped")

func TestStoreResume(t *testing.T) {
	s := openStore(t, InProcess{})
	a := appArchive(t, "app")
	d, n := digestOf(a), int64(len(a))
	cuts := []int64{0, n / 3, 2 * n / 3, n}
	for i := range 3 {
		from, to := cuts[i], cuts[i+1]
		if off := s.Offset(d); off != from {
			t.Fatalf("Offset before chunk %d = %d, want %d", i, off, from)
		}
		var body io.Reader = &failingReader{bytes.NewReader(a[from:to]), errDropped}
		if i == 1 {
			body = bytes.NewReader(a[from:to]) // a short body: no error
		}
		kept, err := s.Write(context.Background(), d, from, n, body)
		switch {
		case i == 2 && (kept != n || err != nil):
			t.Fatalf("last Write = %d, %v; want %d, nil", kept, err, n)
		case i == 0 && (kept != to || !errors.Is(err, errDropped)):
			t.Fatalf("interrupted Write = %d, %v; want %d, %v", kept, err, to, errDropped)
		case i == 1 && (kept != to || err != nil):
			t.Fatalf("short Write = %d, %v; want %d, nil", kept, err, to)
		}
	}
	if !s.Has(d) {
		t.Errorf("Has(%s) = false after a resumed upload", d)
	}
}

func TestStoreWrongOffset(t *testing.T) {
	s := openStore(t, InProcess{})
	a := appArchive(t, "app")
	d, n := digestOf(a), int64(len(a))
	if kept, err := s.Write(context.Background(), d, 0, n, bytes.NewReader(a[:100])); kept != 100 || err != nil {
		t.Fatalf("Write = %d, %v; want 100, nil", kept, err)
	}
	for _, off := range []int64{0, 99, 101, n} {
		kept, err := s.Write(context.Background(), d, off, n, bytes.NewReader(a[off:]))
		var oe *OffsetError
		if kept != 100 || !errors.Is(err, ErrOffset) || !errors.As(err, &oe) || oe.Kept != 100 || oe.Offset != off {
			t.Errorf("Write at %d = %d, %v; want 100, an OffsetError keeping 100", off, kept, err)
		}
	}
	if off := s.Offset(d); off != 100 {
		t.Errorf("Offset = %d, want 100 (kept)", off)
	}
}

func TestStoreDigestMismatch(t *testing.T) {
	s := openStore(t, InProcess{})
	a := appArchive(t, "app")
	wrong := digestOf([]byte("something else"))
	_, err := s.Write(context.Background(), wrong, 0, int64(len(a)), bytes.NewReader(a))
	var de *DigestError
	if !errors.Is(err, ErrDigest) || !errors.As(err, &de) || de.Want != wrong || de.Got != digestOf(a) {
		t.Errorf("Write with the wrong digest = %v, want a DigestError naming %s and %s", err, wrong, digestOf(a))
	}
	checkStoreEmpty(t, s)
}

func TestStoreTooLarge(t *testing.T) {
	s := openStore(t, InProcess{})
	a := appArchive(t, "app")
	d, n := digestOf(a), int64(len(a))
	s.Limits = func(int64) Limits { l := testLimits(); l.MaxBytes = n - 1; return l }
	_, err := s.Write(context.Background(), d, 0, n, bytes.NewReader(a))
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), itoa(n)+" bytes is over the limit of "+itoa(n-1)) {
		t.Errorf("Write over MaxBytes = %v, want ErrTooLarge naming %d and %d", err, n, n-1)
	}
	s.Limits = func(int64) Limits { return testLimits() }
	s.free = func() (int64, error) { return minReserve + 100, nil }
	_, err = s.Write(context.Background(), d, 0, n, bytes.NewReader(a))
	want := itoa(n) + " more bytes do not fit: the data disk has " + itoa(minReserve+100) + " bytes free"
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), want) {
		t.Errorf("Write over the free disk = %v, want ErrTooLarge with %q", err, want)
	}
	checkStoreEmpty(t, s)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestStoreBadDigest(t *testing.T) {
	s := openStore(t, InProcess{})
	for _, d := range []string{"", "sha256:", "md5:d41d8cd98f00b204e9800998ecf8427e",
		"sha256:" + strings.Repeat("A", 64), "sha256:" + strings.Repeat("a", 63), "sha256:../../" + strings.Repeat("a", 58)} {
		if _, err := s.Write(context.Background(), d, 0, 1, strings.NewReader("x")); !errors.Is(err, ErrBadDigest) {
			t.Errorf("Write(%q) = %v, want ErrBadDigest", d, err)
		}
		if _, err := s.Image(d); !errors.Is(err, ErrBadDigest) {
			t.Errorf("Image(%q) = %v, want ErrBadDigest", d, err)
		}
		if err := s.Remove(d); !errors.Is(err, ErrBadDigest) {
			t.Errorf("Remove(%q) = %v, want ErrBadDigest", d, err)
		}
		if s.Has(d) || s.Offset(d) != 0 || s.RootFS(d) != "" {
			t.Errorf("Has, Offset, RootFS(%q) = %v, %d, %q; want false, 0, \"\"", d, s.Has(d), s.Offset(d), s.RootFS(d))
		}
	}
	checkStoreEmpty(t, s)
}

func TestOpenCleans(t *testing.T) {
	root := t.TempDir()
	t.Cleanup(func() { removeAll(root) })
	for _, d := range []string{"staging/abc.123/rootfs/ro/sub", "uploads", "images"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]time.Time{
		"staging/abc.123/rootfs/ro/sub/f": time.Now(), "uploads/old.part": time.Now().Add(-DefaultPartMaxAge - time.Hour),
		"uploads/new.part": time.Now().Add(-DefaultPartMaxAge + time.Hour),
	}
	for name, mtime := range files {
		p := filepath.Join(root, name)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil || os.Chtimes(p, mtime, mtime) != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(root, "staging/abc.123/rootfs/ro"), 0o555)
	if _, err := Open(root, InProcess{}, nil); err != nil {
		t.Fatalf("Open = %v", err)
	}
	if entries, err := os.ReadDir(filepath.Join(root, stagingDir)); err != nil || len(entries) != 0 {
		t.Errorf("staging after Open = %v, %v; want empty", entries, err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, uploadsDir))
	if len(entries) != 1 || entries[0].Name() != "new.part" {
		t.Errorf("uploads after Open = %v, want only new.part (old.part is past DefaultPartMaxAge)", entries)
	}
}

// A power cut after the upload and before the unpack leaves a complete
// part: the client resumes at its end with no bytes, and it unpacks.
func TestStoreCompletePartUnpacksOnResume(t *testing.T) {
	s := openStore(t, InProcess{})
	a := appArchive(t, "app")
	d, n := digestOf(a), int64(len(a))
	if err := os.WriteFile(s.partPath(strings.TrimPrefix(d, digestAlgo)), a, 0o600); err != nil {
		t.Fatal(err)
	}
	if off := s.Offset(d); off != n {
		t.Fatalf("Offset = %d, want %d", off, n)
	}
	if kept, err := s.Write(context.Background(), d, n, n, strings.NewReader("")); kept != n || err != nil || !s.Has(d) {
		t.Errorf("Write(offset %d, no bytes) = %d, %v, Has %v; want %d, nil, true", n, kept, err, s.Has(d), n)
	}
}

func TestStoreGCAndRemove(t *testing.T) {
	s := openStore(t, InProcess{})
	var digests []string
	for _, name := range []string{"used", "unused", "unused2"} {
		a := appArchive(t, name)
		if _, err := s.Write(context.Background(), digestOf(a), 0, int64(len(a)), bytes.NewReader(a)); err != nil {
			t.Fatal(err)
		}
		digests = append(digests, digestOf(a))
	}
	used := digests[0]
	removed, err := s.GC(func(d string) bool { return d == used })
	slices.Sort(removed)
	if want := slices.Sorted(slices.Values(digests[1:])); err != nil || !slices.Equal(removed, want) {
		t.Errorf("GC = %v, %v; want %v", removed, err, want)
	}
	if !s.Has(used) || s.Has(digests[1]) || s.Has(digests[2]) {
		t.Errorf("Has after GC = %v %v %v, want true false false", s.Has(used), s.Has(digests[1]), s.Has(digests[2]))
	}
	if err := s.Remove(used); err != nil || s.Has(used) {
		t.Errorf("Remove = %v, Has %v; want nil, false", err, s.Has(used))
	}
	if err := s.Remove(used); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove again = %v, want ErrNotFound", err)
	}
	if _, err := s.Image(used); !errors.Is(err, ErrNotFound) {
		t.Errorf("Image after Remove = %v, want ErrNotFound", err)
	}
	checkStoreEmpty(t, s)
}

// blockingReader yields one byte, says so on started, then waits for
// release before yielding the rest.
type blockingReader struct {
	data             []byte
	started, release chan struct{}
	sent             bool
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		close(b.started)
		return copy(p, b.data[:1]), nil
	}
	<-b.release
	if len(b.data) == 1 {
		return 0, io.EOF
	}
	n := copy(p, b.data[1:])
	b.data = b.data[n:]
	return n, nil
}

func TestStoreBusy(t *testing.T) {
	s := openStore(t, InProcess{})
	a, other := appArchive(t, "app"), appArchive(t, "other")
	d, n := digestOf(a), int64(len(a))
	slow := &blockingReader{data: a, started: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error)
	go func() {
		_, err := s.Write(context.Background(), d, 0, n, slow)
		done <- err
	}()
	<-slow.started
	if _, err := s.Write(context.Background(), d, 0, n, bytes.NewReader(a)); !errors.Is(err, ErrBusy) {
		t.Errorf("second Write of the same digest = %v, want ErrBusy", err)
	}
	if err := s.Remove(d); !errors.Is(err, ErrBusy) {
		t.Errorf("Remove during its upload = %v, want ErrBusy", err)
	}
	// Another digest goes ahead while the first is stuck.
	if _, err := s.Write(context.Background(), digestOf(other), 0, int64(len(other)), bytes.NewReader(other)); err != nil {
		t.Errorf("Write of another digest = %v, want nil", err)
	}
	close(slow.release)
	if err := <-done; err != nil || !s.Has(d) {
		t.Errorf("the first Write = %v, Has %v; want nil, true", err, s.Has(d))
	}
}
