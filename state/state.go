package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Buckets. Renaming one is a migration.
var (
	bucketMeta = []byte("meta")
	bucketKeys = []byte("keys")
)

// Keys of bucketMeta.
var (
	keySchema    = []byte("schema")
	keyBootCount = []byte("boot_count")
)

// schemaVersion is the version Open migrates to.
const schemaVersion = 1

// DB is the node's state database.
type DB struct {
	bolt *bolt.DB
	// MovedAside is where a database that would not open was moved,
	// or "" when the database opened normally.
	MovedAside string
}

// lockTimeout bounds the wait for another process's lock on the file.
const lockTimeout = 5 * time.Second

// Open opens (or creates) the database at path. A database that will not
// open because it is damaged is renamed to path.corrupt-TIMESTAMP and a
// fresh one is made in its place; DB.MovedAside says so. A lock held by
// another process is an error, not damage.
func Open(path string, log *slog.Logger) (*DB, error) {
	db, err := open(path)
	if err == nil {
		return db, nil
	}
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("state: open %s: locked by another process: %w", path, err)
	}
	aside := fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405Z"))
	log.Error("state: database will not open; moving it aside and starting fresh", "path", path, "err", err, "moved_to", aside)
	if rerr := os.Rename(path, aside); rerr != nil {
		return nil, fmt.Errorf("state: open %s: %w; moving it aside: %w", path, err, rerr)
	}
	db, err2 := open(path)
	if err2 != nil {
		return nil, fmt.Errorf("state: open fresh %s after moving the damaged one aside: %w", path, err2)
	}
	db.MovedAside = aside
	return db, nil
}

func open(path string) (db *DB, err error) {
	// bbolt panics on some kinds of damage instead of returning an error.
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("state: bbolt panicked opening %s: %v", path, v)
		}
	}()
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return nil, err
	}
	db = &DB{bolt: b}
	if err := db.migrate(); err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

func (db *DB) migrate() error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketKeys, bucketContainers, bucketEvents} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("state: create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := getUint(meta, keySchema); v > schemaVersion {
			return fmt.Errorf("state: schema version %d is newer than this init understands (%d)", v, schemaVersion)
		}
		return putUint(meta, keySchema, schemaVersion)
	})
}

// Close closes the database.
func (db *DB) Close() error { return db.bolt.Close() }

// Path is the database file.
func (db *DB) Path() string { return db.bolt.Path() }

// CountBoot adds one to the boot count and returns the new count.
func (db *DB) CountBoot() (uint64, error) {
	var n uint64
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		n = getUint(meta, keyBootCount) + 1
		return putUint(meta, keyBootCount, n)
	})
	return n, err
}

// BootCount returns the boot count.
func (db *DB) BootCount() (uint64, error) {
	var n uint64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		n = getUint(tx.Bucket(bucketMeta), keyBootCount)
		return nil
	})
	return n, err
}

func getUint(b *bolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putUint(b *bolt.Bucket, k []byte, n uint64) error {
	return b.Put(k, binary.BigEndian.AppendUint64(nil, n))
}
