package imagestore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freeFor is a free space of which avail is left for uploads past the
// floor.
func freeFor(avail int64) int64 {
	f := (avail + minReserve) * 20 / 19
	for f-reserve(f) < avail {
		f++
	}
	return f
}

// Three concurrent uploads each passed the free-space check on its own
// and together filled the disk (issue 10): an upload in flight holds
// what it has still to write, and another that does not fit beside it
// is refused before a byte of it is read, leaving nothing behind.
func TestStoreReservesSpace(t *testing.T) {
	s := openStore(t, InProcess{})
	a, b := appArchive(t, "a"), appArchive(t, "b")
	da, na, db, nb := digestOf(a), int64(len(a)), digestOf(b), int64(len(b))
	s.free = func() (int64, error) { return freeFor(na + nb/2), nil }
	slow := &blockingReader{data: a, started: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error)
	go func() {
		_, err := s.Write(context.Background(), da, 0, na, slow)
		done <- err
	}()
	<-slow.started
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		d, err := s.Disk()
		if err == nil && d.Reserved == na-1 { // its first byte is written
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Disk() during the upload = %+v, %v; want Reserved %d", d, err, na-1)
		}
	}
	unread := &countingReader{r: bytes.NewReader(b)}
	_, err := s.Write(context.Background(), db, 0, nb, unread)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "1 other upload ("+da[:19]+")") {
		t.Errorf("Write beside an upload in flight = %v, want ErrTooLarge naming the other upload", err)
	}
	if unread.n != 0 {
		t.Errorf("the refused upload's body was read: %d bytes, want 0", unread.n)
	}
	if _, err := os.Stat(s.partPath(strings.TrimPrefix(db, digestAlgo))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused upload left a part: %v", err)
	}
	close(slow.release)
	if err := <-done; err != nil {
		t.Fatalf("the first Write = %v", err)
	}
	if d, _ := s.Disk(); d.Reserved != 0 {
		t.Errorf("Disk().Reserved after the upload = %d, want 0", d.Reserved)
	}
	if _, err := s.Write(context.Background(), db, 0, nb, bytes.NewReader(b)); err != nil {
		t.Errorf("Write once the first is done = %v, want nil", err)
	}
}

type countingReader struct {
	r interface{ Read([]byte) (int, error) }
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// Partial uploads stayed on a full disk and cloud rmi could not remove
// them (issue 10): they are listed, removable by digest, and expire.
func TestStorePartials(t *testing.T) {
	s := openStore(t, InProcess{})
	a := appArchive(t, "app")
	d, n := digestOf(a), int64(len(a))
	half := func() {
		t.Helper()
		if kept, err := s.Write(context.Background(), d, 0, n, bytes.NewReader(a[:n/2])); kept != n/2 || err != nil {
			t.Fatalf("Write of half = %d, %v; want %d, nil", kept, err, n/2)
		}
	}
	half()
	ps, err := s.Partials()
	if err != nil || len(ps) != 1 || ps[0].Digest != d || ps[0].Size != n/2 || ps[0].Length != n || ps[0].Active ||
		ps[0].Expires.Sub(ps[0].Modified) != DefaultPartMaxAge {
		t.Fatalf("Partials() = %+v, %v; want %s, %d of %d bytes, expiring after %v", ps, err, d, n/2, n, DefaultPartMaxAge)
	}
	if err := s.Remove(d); err != nil {
		t.Errorf("Remove(a partial upload) = %v, want nil", err)
	}
	if err := s.Remove(d); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove again = %v, want ErrNotFound", err)
	}
	checkStoreEmpty(t, s)

	half()
	s.now = func() time.Time { return time.Now().Add(DefaultPartMaxAge - time.Minute) }
	if ps, _ := s.Partials(); len(ps) != 1 {
		t.Errorf("Partials() before it expires = %+v, want 1", ps)
	}
	s.now = func() time.Time { return time.Now().Add(DefaultPartMaxAge + time.Minute) }
	if ps, err := s.Partials(); len(ps) != 0 || err != nil {
		t.Errorf("Partials() once expired = %+v, %v; want none", ps, err)
	}
	checkStoreEmpty(t, s)
}

// A dropped connection right after the last byte of an upload
// discarded the whole upload (issue 10): once every byte is in, the
// caller's context no longer stops the unpacking.
func TestStoreWriteSurvivesCancelAfterLastByte(t *testing.T) {
	s := openStore(t, InProcess{})
	a := appArchive(t, "app")
	d, n := digestOf(a), int64(len(a))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body := &cancelAtEOF{r: bytes.NewReader(a), cancel: cancel}
	if kept, err := s.Write(ctx, d, 0, n, body); kept != n || err != nil || !s.Has(d) {
		t.Errorf("Write cancelled after its last byte = %d, %v, Has %v; want %d, nil, true", kept, err, s.Has(d), n)
	}
	if ctx.Err() == nil {
		t.Error("the body did not cancel the context")
	}
}

// cancelAtEOF cancels when its last byte has been read.
type cancelAtEOF struct {
	r      *bytes.Reader
	cancel func()
}

func (c *cancelAtEOF) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.r.Len() == 0 {
		c.cancel()
	}
	return n, err
}

func TestPreallocate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(p, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Preallocate(p, 1<<20)
	if errors.Is(err, syscall.EOPNOTSUPP) {
		t.Skipf("Preallocate: %v", err)
	}
	fi, serr := os.Stat(p)
	if err != nil || serr != nil {
		t.Fatalf("Preallocate = %v (stat %v)", err, serr)
	}
	if blocks := fi.Sys().(*syscall.Stat_t).Blocks * 512; fi.Size() != 10 || blocks < 1<<20 {
		t.Errorf("after Preallocate(1 MiB): size %d, %d bytes allocated; want 10, at least 1 MiB", fi.Size(), blocks)
	}
}
