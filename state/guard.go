package state

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// guard is the open bbolt file behind a lock that recovery takes to
// swap it. Every transaction runs through it: a panic of bbolt (or a
// fault reading a damaged page of its mmap, which Go would otherwise
// treat as fatal) becomes a CorruptError, and any CorruptError starts
// the recovery. A committed write asks for a copy.
type guard struct {
	mu sync.RWMutex
	b  *bolt.DB
	// damaged is told of every CorruptError, outside mu.
	damaged func(error)
	// wrote is told of every committed write, outside mu.
	wrote func()
}

// View runs f in a read transaction.
func (g *guard) View(f func(*bolt.Tx) error) error { return g.run(false, f) }

// Update runs f in a write transaction, committed (and fsync'd) when f
// returns nil.
func (g *guard) Update(f func(*bolt.Tx) error) error { return g.run(true, f) }

func (g *guard) run(write bool, f func(*bolt.Tx) error) error {
	g.mu.RLock()
	b := g.b
	err := safely(func() error {
		if write {
			return b.Update(f)
		}
		return b.View(f)
	})
	g.mu.RUnlock()
	switch {
	case errors.Is(err, ErrCorrupt):
		if g.damaged != nil {
			g.damaged(err)
		}
	case err == nil && write && g.wrote != nil:
		g.wrote()
	}
	return err
}

// Close closes the file.
func (g *guard) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.b.Close()
}

// Path is the file's path.
func (g *guard) Path() string { return g.b.Path() }

// safely runs f, turning a panic, and a memory fault while it reads
// the mmap, into a CorruptError.
func safely(f func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if v := recover(); v != nil {
			err = corrupt("", fmt.Errorf("bbolt panicked: %v", v))
		}
	}()
	return f()
}
