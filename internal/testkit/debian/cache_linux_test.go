package debian

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Concurrent callers build once and all get the finished directory: the
// flock belongs to each open of the lock file, so goroutines contend for
// it as processes do.
func TestCachedBuildsOnce(t *testing.T) {
	dir := t.TempDir()
	var builds atomic.Int32
	build := func(ctx context.Context, tmp string) error {
		builds.Add(1)
		if filepath.Base(tmp) != "x.tmp" {
			t.Errorf("build got %s, want DIR/x.tmp", tmp)
		}
		time.Sleep(300 * time.Millisecond) // long enough for the others to wait
		return os.WriteFile(filepath.Join(tmp, "done"), []byte("yes"), 0o644)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			got, err := Cached(context.Background(), dir, "x", t.Logf, build)
			if err != nil {
				t.Errorf("Cached: %v", err)
				return
			}
			if b, err := os.ReadFile(filepath.Join(got, "done")); err != nil || string(b) != "yes" {
				t.Errorf("Cached = %s, holding done = %q, %v: want a finished build", got, b, err)
			}
		})
	}
	wg.Wait()
	if n := builds.Load(); n != 1 {
		t.Errorf("4 concurrent Cached: %d builds, want 1", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("x.tmp after the build: %v, want it gone", err)
	}
}

// A failed build leaves nothing under the name, and the next call builds
// again; a .tmp a crashed build left is cleared first.
func TestCachedFailureAndCrash(t *testing.T) {
	dir := t.TempDir()
	boom := errors.New("boom")
	_, err := Cached(context.Background(), dir, "x", nil, func(ctx context.Context, tmp string) error {
		os.WriteFile(filepath.Join(tmp, "half"), nil, 0o644)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Cached with a failing build = %v, want %v", err, boom)
	}
	for _, p := range []string{"x", "x.tmp"} {
		if _, err := os.Stat(filepath.Join(dir, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after a failed build: %v, want it absent", p, err)
		}
	}
	// What a build killed mid-way leaves.
	os.MkdirAll(filepath.Join(dir, "x.tmp", "stale"), 0o755)
	_, err = Cached(context.Background(), dir, "x", nil, func(ctx context.Context, tmp string) error {
		if _, err := os.Stat(filepath.Join(tmp, "stale")); err == nil {
			t.Errorf("build got %s with a crashed build's files in it, want it empty", tmp)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Cached after a crash: %v", err)
	}
}

// A caller waiting for the lock gives up when its context ends.
func TestCachedWaitCancelled(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lock(context.Background(), filepath.Join(dir, "x.lock"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = Cached(ctx, dir, "x", nil, func(context.Context, string) error {
		t.Error("built while another held the lock")
		return nil
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Cached while locked elsewhere = %v, want context.DeadlineExceeded", err)
	}
}
