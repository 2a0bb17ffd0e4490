package debian

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"allium/internal/durable"

	"golang.org/x/sys/unix"
)

// Root is the cache's directory, outside any work tree.
const Root = "/var/cache/allium-test"

// lockPoll is how often a waiting Cached retries the lock: flock itself
// cannot be cancelled by a context.
const lockPoll = 200 * time.Millisecond

// Cached returns dir/name, building it first when it is not there. build
// gets an empty directory, dir/name.tmp, to fill; Cached renames it to
// dir/name once build returns nil. An exclusive flock on dir/name.lock
// makes concurrent callers, in this process or others, build name once:
// the others wait for the lock and then find it. A dir/name.tmp left by
// a build that crashed is removed before building again. logf, which may
// be nil, hears about waiting and building.
func Cached(ctx context.Context, dir, name string, logf func(string, ...any),
	build func(ctx context.Context, tmp string) error) (string, error) {
	final := filepath.Join(dir, name)
	if fi, err := os.Stat(final); err == nil && fi.IsDir() {
		return final, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	unlock, err := lock(ctx, final+".lock", logf)
	if err != nil {
		return "", err
	}
	defer unlock()
	if fi, err := os.Stat(final); err == nil && fi.IsDir() {
		return final, nil // built while we waited
	}
	tmp := final + ".tmp"
	if err := removeAll(tmp); err != nil {
		return "", fmt.Errorf("cache: removing a crashed build: %w", err)
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	start := time.Now()
	if logf != nil {
		logf("cache: building %s", final)
	}
	if err := build(ctx, tmp); err != nil {
		removeAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	durable.SyncDir(dir) // best effort: the cache is rebuilt if lost
	if logf != nil {
		logf("cache: built %s in %.1f s", final, time.Since(start).Seconds())
	}
	return final, nil
}

// lock takes an exclusive flock on path, waiting until it is free or ctx
// ends. The lock belongs to the open file: a second open of the same
// path, even in this process, waits for it.
func lock(ctx context.Context, path string, logf func(string, ...any)) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	waited := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("cache: flock %s: %w", path, err)
		}
		if !waited && logf != nil {
			logf("cache: waiting for %s: another test is building it", path)
		}
		waited = true
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("cache: waiting for %s: %w", path, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

// removeAll removes path, first unmounting anything a killed build left
// mounted under it (a tree's /proc, say), so that RemoveAll does not
// descend into the host's.
func removeAll(path string) error {
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	for _, sub := range []string{"dev", "sys", "proc"} {
		// EINVAL: not a mount point; ENOENT: not there. Both are the usual case.
		unix.Unmount(filepath.Join(path, sub), unix.MNT_DETACH)
	}
	return os.RemoveAll(path)
}
