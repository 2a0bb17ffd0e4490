package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// sealedBuckets hold only sealed values; in meta, sealedMeta are.
var (
	sealedBuckets = [][]byte{bucketKeys, bucketContainers, bucketEvents}
	sealedMeta    = [][]byte{keyBootCount, keyTCP, keyAlive}
)

// maxCheckErrors bounds what is kept of bbolt's check of a badly
// damaged file.
const maxCheckErrors = 3

// verify finds damage in the file tx reads: bbolt's own check of its
// pages (reachable, freed, types, key order), then every sealed value.
func verify(tx *bolt.Tx) error {
	if err := check(tx); err != nil {
		return err
	}
	return checkValues(tx)
}

// check runs bbolt's check, after touching every page it will read
// here: bbolt runs its check in a goroutine of its own, where a fault
// on a page number beyond the file (a damaged branch) would be fatal,
// as SetPanicOnFault is per goroutine.
func check(tx *bolt.Tx) error {
	if err := touch(tx); err != nil {
		return err
	}
	var errs []error
	for err := range tx.Check() {
		if len(errs) < maxCheckErrors {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return corrupt("its pages", errors.Join(errs...))
	}
	return nil
}

func checkValues(tx *bolt.Tx) error {
	for _, name := range sealedBuckets {
		b := tx.Bucket(name)
		if b == nil {
			return corrupt(string(name), errors.New("bucket missing"))
		}
		if err := each(b, name, func(_, _ []byte) error { return nil }); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return corrupt(string(bucketMeta), errors.New("bucket missing"))
	}
	for _, k := range sealedMeta {
		if _, err := get(meta, bucketMeta, k); err != nil {
			return err
		}
	}
	return nil
}

// verifyFile opens the database at path read-only and verifies it, as
// done for a copy before it is kept and before it is restored.
func verifyFile(path string) error {
	return safely(func() error {
		b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
		if err != nil {
			return corrupt("", err)
		}
		defer b.Close()
		return b.View(func(tx *bolt.Tx) error {
			if v := getUint(tx.Bucket(bucketMeta), keySchema); v != schemaVersion {
				return corrupt("meta/schema", fmt.Errorf("schema %d, want %d", v, schemaVersion))
			}
			return verify(tx)
		})
	})
}

// bbolt's meta page, as it lays it out after the 16-byte page header:
// magic, version, page size, flags (4 bytes each), the root bucket
// (root page, sequence), the freelist page, the high-water page, the
// transaction id and an FNV-64a checksum of what comes before it.
const (
	pageHeader   = 16
	metaSummed   = 56
	metaMagic    = 0xED0CDAED
	metaVersion  = 2
	offPageSize  = 8
	offTxid      = 48
	metaChecksum = 56
)

// checkMeta reads the file's two meta pages. bbolt opens a file whose
// newer meta page is damaged from the other one, one transaction
// older, and says nothing: checkMeta says it (a non-empty note). Both
// damaged is an error; a missing or empty file is neither.
func checkMeta(path string) (note string, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	n, _ := io.ReadFull(f, buf)
	if n == 0 {
		return "", nil
	}
	buf = buf[:n]
	tx0, size, err0 := readMeta(buf, 0)
	if err0 != nil {
		size = os.Getpagesize()
	}
	tx1, _, err1 := readMeta(buf, size)
	switch {
	case err0 != nil && err1 != nil:
		return "", corrupt("meta pages", fmt.Errorf("page 0: %v; page 1: %v", err0, err1))
	case err0 != nil:
		return fmt.Sprintf("meta page 0 is damaged (%v); bbolt used meta page 1 (transaction %d)", err0, tx1), nil
	case err1 != nil:
		return fmt.Sprintf("meta page 1 is damaged (%v); bbolt used meta page 0 (transaction %d)", err1, tx0), nil
	}
	return "", nil
}

func readMeta(buf []byte, off int) (txid uint64, pageSize int, err error) {
	if off+pageHeader+metaChecksum+8 > len(buf) {
		return 0, 0, errors.New("short")
	}
	m := buf[off+pageHeader:]
	le := binary.LittleEndian
	if le.Uint32(m) != metaMagic || le.Uint32(m[4:]) != metaVersion {
		return 0, 0, errors.New("bad magic or version")
	}
	h := fnv.New64a()
	h.Write(m[:metaSummed])
	if h.Sum64() != le.Uint64(m[metaChecksum:]) {
		return 0, 0, errors.New("checksum mismatch")
	}
	return le.Uint64(m[offTxid:]), int(le.Uint32(m[offPageSize:])), nil
}

// modTime is path's modification time, zero when unknown.
func modTime(path string) time.Time {
	st, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}

// touch reads every key and value of every bucket, nested ones too, in
// the calling goroutine (which runs under safely).
func touch(tx *bolt.Tx) error {
	var n byte
	var walk func(b *bolt.Bucket) error
	walk = func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				if nb := b.Bucket(k); nb != nil {
					return walk(nb)
				}
			}
			for _, c := range v {
				n ^= c
			}
			return nil
		})
	}
	err := tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walk(b) })
	_ = n
	return err
}
