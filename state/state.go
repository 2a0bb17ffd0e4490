package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Buckets. Renaming one is a migration.
var (
	bucketMeta = []byte("meta")
	bucketKeys = []byte("keys")
)

// Keys of bucketMeta. The schema is stored bare (8 bytes, big-endian);
// the others are sealed.
var (
	keySchema    = []byte("schema")
	keyBootCount = []byte("boot_count")
)

// SchemaVersion is the version of state.db's schema this build reads
// and writes: Open migrates an older one to it and refuses a newer one
// (ErrNewerSchema). An init that is to take over a node's state.db must
// understand at least the schema on disk (`init version --json` says
// which it does). 2: every value sealed.
const SchemaVersion = 2

const schemaVersion = SchemaVersion

// DB is the node's state database, its copies and its key journal.
type DB struct {
	bolt    *guard
	path    string
	log     *slog.Logger
	journal *journal
	copies  *copies

	recovering atomic.Bool // a recovery is under way
	mu         sync.Mutex
	recoveries []Recovery
	onRecover  func(Recovery)
}

// lockTimeout bounds the wait for another process's lock on the file.
const lockTimeout = 5 * time.Second

// Options configure Open. The zero value is the node's defaults.
type Options struct {
	// Log receives what happens; nil means slog.Default().
	Log *slog.Logger
	// CopyEvery is the least time between two copies taken after
	// writes; 0 means DefaultCopyEvery.
	CopyEvery time.Duration
	// Copies is how many copies are kept; 0 means DefaultCopies.
	Copies int
}

// Defaults of Options.
const (
	DefaultCopyEvery = time.Minute
	DefaultCopies    = 3
)

// Open opens (or creates) the database at path with the node's
// defaults, recovering it if it is damaged (see OpenWith).
func Open(path string, log *slog.Logger) (*DB, error) {
	return OpenWith(path, Options{Log: log})
}

// OpenWith opens (or creates) the database at path. The file is
// verified (bbolt's check of its pages, and every value's checksum);
// a damaged one is moved aside to path.corrupt-TIMESTAMP and replaced
// by the newest copy that verifies, or by a fresh file when none does.
// The key journal (path.keys) is then replayed over it. Recoveries
// says what was recovered from where. A lock held by another process,
// or a file of a newer schema, is an error, not damage.
func OpenWith(path string, opts Options) (*DB, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	db := &DB{path: path, log: opts.Log, copies: newCopies(path, opts)}
	j, err := openJournal(path + ".keys")
	if err != nil {
		return nil, err
	}
	db.journal = j
	b, rec, err := db.openBest()
	if err != nil {
		j.close()
		return nil, err
	}
	db.bolt = &guard{b: b, damaged: db.damaged, wrote: db.copies.schedule}
	db.copies.take = db.copy
	if err := db.settle(rec); err != nil {
		db.bolt.Close()
		j.close()
		return nil, err
	}
	db.copies.schedule() // a copy of what this boot found good
	return db, nil
}

// settle replays the key journal over the open file (first filling
// an empty journal from it: a node upgraded to the journal) and
// records rec, when there was a recovery.
func (db *DB) settle(rec *Recovery) error {
	var replay KeyReplay
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		if db.journal.empty() {
			if err := eachKey(tx.Bucket(bucketKeys), func(k Key) error { return db.journal.append(opAdd, k) }); err != nil {
				return err
			}
		}
		var err error
		replay, err = db.journal.replay(tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("state: replay the key journal: %w", err)
	}
	if rec == nil && (len(replay.Revoked) > 0 || len(replay.Restored) > 0 || replay.Skipped > 0 || replay.Torn) {
		rec = &Recovery{Time: time.Now().UTC()}
	}
	if rec == nil {
		return nil
	}
	rec.Keys = replay
	db.log.Warn("state: recovered", "what", rec.String())
	db.mu.Lock()
	db.recoveries = append(db.recoveries, *rec)
	f := db.onRecover
	db.mu.Unlock()
	if f != nil {
		f(*rec)
	}
	return nil
}

// openBest opens the live file if it verifies, else recovers.
func (db *DB) openBest() (*bolt.DB, *Recovery, error) {
	if _, err := os.Stat(db.path); errors.Is(err, os.ErrNotExist) && (len(db.copies.list()) > 0 || db.journal.existed) {
		return db.recoverFile(corrupt("", errors.New("state.db is missing, but its copies or its key journal are there")))
	}
	b, note, err := openVerified(db.path)
	if err == nil {
		if note != "" {
			return b, &Recovery{Time: time.Now().UTC(), Damage: note, From: "the file's other meta page"}, nil
		}
		return b, nil, nil
	}
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, nil, fmt.Errorf("state: open %s: locked by another process: %w", db.path, err)
	}
	if errors.Is(err, ErrNewerSchema) {
		return nil, nil, err
	}
	return db.recoverFile(err)
}

// openVerified opens path and verifies it. note is set when bbolt
// opened it from its older meta page.
func openVerified(path string) (b *bolt.DB, note string, err error) {
	note, err = checkMeta(path)
	if err != nil {
		return nil, "", err
	}
	err = safely(func() error {
		var err error
		b, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
		if errors.Is(err, bolt.ErrTimeout) {
			return err
		}
		if err != nil {
			return corrupt("", err)
		}
		if err := b.View(check); err != nil {
			return err
		}
		if err := migrate(b); err != nil {
			return err
		}
		return b.View(checkValues)
	})
	if err != nil && b != nil {
		b.Close()
		b = nil
	}
	return b, note, err
}

func migrate(b *bolt.DB) error {
	return b.Update(func(tx *bolt.Tx) error {
		all := [][]byte{bucketMeta, bucketKeys, bucketContainers, bucketEvents}
		if missing := missingBuckets(tx, all); len(missing) > 0 && len(missing) < len(all) {
			// A file made by Open has them all: a name damaged in the root
			// bucket's page must not come back as an empty bucket.
			return corrupt("the root bucket", fmt.Errorf("buckets %q missing", missing))
		}
		for _, name := range all {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("state: create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		v := getUint(meta, keySchema)
		if v > schemaVersion {
			return fmt.Errorf("state: schema version %d, this init understands %d: %w", v, schemaVersion, ErrNewerSchema)
		}
		if v == 1 {
			if err := sealAll(tx); err != nil {
				return fmt.Errorf("state: migrate to schema 2: %w", err)
			}
		}
		return putUint(meta, keySchema, schemaVersion)
	})
}

func missingBuckets(tx *bolt.Tx, names [][]byte) []string {
	var out []string
	for _, n := range names {
		if tx.Bucket(n) == nil {
			out = append(out, string(n))
		}
	}
	return out
}

// sealAll seals every value of a schema 1 file.
func sealAll(tx *bolt.Tx) error {
	for _, name := range sealedBuckets {
		if err := sealBucket(tx.Bucket(name), name, nil); err != nil {
			return err
		}
	}
	return sealBucket(tx.Bucket(bucketMeta), bucketMeta, sealedMeta)
}

// sealBucket seals the values of b, or only those of keys when given.
func sealBucket(b *bolt.Bucket, name []byte, keys [][]byte) error {
	type kv struct{ k, v []byte }
	var all []kv
	b.ForEach(func(k, v []byte) error {
		all = append(all, kv{append([]byte(nil), k...), append([]byte(nil), v...)})
		return nil
	})
	for _, e := range all {
		if keys != nil && !containsKey(keys, e.k) {
			continue
		}
		if err := put(b, name, e.k, e.v); err != nil {
			return err
		}
	}
	return nil
}

func containsKey(keys [][]byte, k []byte) bool {
	for _, x := range keys {
		if string(x) == string(k) {
			return true
		}
	}
	return false
}

// Close takes a last copy if anything was written since the newest,
// and closes the database and the key journal.
func (db *DB) Close() error {
	db.copies.stop()
	return errors.Join(db.bolt.Close(), db.journal.close())
}

// Path is the database file.
func (db *DB) Path() string { return db.path }

// CountBoot adds one to the boot count and returns the new count.
func (db *DB) CountBoot() (uint64, error) {
	var n uint64
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		v, err := get(meta, bucketMeta, keyBootCount)
		if err != nil {
			return err
		}
		if len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
		n++
		return put(meta, bucketMeta, keyBootCount, binary.BigEndian.AppendUint64(nil, n))
	})
	return n, err
}

// BootCount returns the boot count.
func (db *DB) BootCount() (uint64, error) {
	var n uint64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		v, err := get(tx.Bucket(bucketMeta), bucketMeta, keyBootCount)
		if len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
		return err
	})
	return n, err
}

// getUint reads a bare uint64 (the schema).
func getUint(b *bolt.Bucket, k []byte) uint64 {
	if b == nil {
		return 0
	}
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putUint(b *bolt.Bucket, k []byte, n uint64) error {
	return b.Put(k, binary.BigEndian.AppendUint64(nil, n))
}

// Suspend closes the bbolt file for a handover in place (init's
// re-exec), which releases its lock for the next process to open it:
// every transaction from now on waits. resume reopens the file and lets
// them go on, when the handover did not happen; after a handover the
// waiting goroutines end with the process. The key journal stays open:
// it is appended and synced one record at a time.
func (db *DB) Suspend() (resume func() error, err error) {
	g := db.bolt
	g.mu.Lock()
	if err := g.b.Close(); err != nil {
		g.mu.Unlock()
		return nil, fmt.Errorf("state: close for a handover: %w", err)
	}
	return func() error {
		defer g.mu.Unlock()
		b, err := bolt.Open(db.path, 0o600, &bolt.Options{Timeout: lockTimeout})
		if err != nil {
			return fmt.Errorf("state: reopen %s after a handover that did not happen: %w", db.path, err)
		}
		g.b = b
		return nil
	}, nil
}
