package state

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"allium/internal/safe"

	bolt "go.etcd.io/bbolt"
)

// copies are consistent copies of state.db in path.copies/, named by a
// sequence number (the newest is the highest: the clock of a VPS
// without a battery may go backwards), each written from a read
// transaction, fsync'd, verified, and renamed into place:
//
//	state.db.copies/000000000041.db   the oldest kept
//	state.db.copies/000000000042.db
//	state.db.copies/000000000043.db   the newest
//
// One is taken when the database opens, after committed writes (at
// most one per CopyEvery: a crash-looping container writes its history
// every few seconds) and at Close when anything was written since.
type copies struct {
	dir   string
	keep  int
	every time.Duration
	log   *slog.Logger
	take  func() (string, error)
	// copying makes copies one at a time.
	copying sync.Mutex

	mu      sync.Mutex
	timer   *time.Timer
	last    time.Time
	dirty   bool
	stopped bool
}

func newCopies(path string, opts Options) *copies {
	c := &copies{dir: path + ".copies", keep: opts.Copies, every: opts.CopyEvery, log: opts.Log}
	if c.keep <= 0 {
		c.keep = DefaultCopies
	}
	if c.every <= 0 {
		c.every = DefaultCopyEvery
	}
	return c
}

// schedule asks for a copy: now if none was taken for CopyEvery, else
// when that much time has passed.
func (c *copies) schedule() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dirty = true
	if c.timer != nil || c.stopped {
		return
	}
	c.timer = time.AfterFunc(max(0, c.every-time.Since(c.last)), c.run)
}

func (c *copies) run() {
	c.copying.Lock()
	defer c.copying.Unlock()
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.timer, c.last, c.dirty = nil, time.Now(), false
	c.mu.Unlock()
	safe.Run(c.log, "state: copy", func() {
		if p, err := c.take(); err != nil {
			c.log.Error("state: taking a copy", "err", err)
		} else {
			c.log.Debug("state: copy taken", "path", p)
		}
	})
}

// stop cancels the scheduled copy, waits for one under way, and takes
// the last one if anything was written since the newest.
func (c *copies) stop() {
	c.copying.Lock()
	defer c.copying.Unlock()
	c.mu.Lock()
	c.stopped = true
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	dirty := c.dirty
	c.mu.Unlock()
	if dirty && c.take != nil {
		if _, err := c.take(); err != nil {
			c.log.Error("state: the last copy", "err", err)
		}
	}
}

// list returns the copies' paths, the newest first.
func (c *copies) list() []string {
	names, _ := filepath.Glob(filepath.Join(c.dir, "*.db"))
	slices.SortFunc(names, func(a, b string) int { return -strings.Compare(filepath.Base(a), filepath.Base(b)) })
	return names
}

func (c *copies) next() uint64 {
	l := c.list()
	if len(l) == 0 {
		return 1
	}
	n, _ := strconv.ParseUint(strings.TrimSuffix(filepath.Base(l[0]), ".db"), 10, 64)
	return n + 1
}

// prune removes the oldest copies beyond keep.
func (c *copies) prune() {
	for _, p := range c.list()[min(c.keep, len(c.list())):] {
		os.Remove(p)
	}
}

// Copy writes a consistent copy of the database now (from a read
// transaction, so writers go on), verifies it, and keeps it as the
// newest copy. A copy that does not verify means the database itself
// is damaged: it is not kept, and the recovery starts.
func (db *DB) Copy() (string, error) {
	db.copies.copying.Lock()
	defer db.copies.copying.Unlock()
	return db.copy()
}

// copy is Copy, under copies.copying.
func (db *DB) copy() (string, error) {
	c := db.copies
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return "", fmt.Errorf("state: copy: %w", err)
	}
	tmp := filepath.Join(c.dir, "copy.tmp")
	err := db.bolt.View(func(tx *bolt.Tx) error { return writeCopy(tx, tmp) })
	if err == nil {
		if err = verifyFile(tmp); errors.Is(err, ErrCorrupt) {
			db.damaged(err)
		}
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("state: copy: %w", err)
	}
	dst := filepath.Join(c.dir, fmt.Sprintf("%012d.db", c.next()))
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("state: copy: %w", err)
	}
	syncDir(c.dir)
	c.prune()
	return dst, nil
}

func writeCopy(tx *bolt.Tx, path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = tx.WriteTo(f)
	return errors.Join(err, f.Sync(), f.Close())
}
