package state

import (
	"encoding/binary"
	"encoding/json"

	bolt "go.etcd.io/bbolt"
)

var bucketEvents = []byte("events")

// MaxEvents is how many events the node keeps; older ones are dropped.
const MaxEvents = 1000

// AppendEvent stores an event (any JSON-marshalable value) after the
// others, dropping the oldest beyond MaxEvents.
func (db *DB) AppendEvent(ev any) error {
	v, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := put(b, bucketEvents, binary.BigEndian.AppendUint64(nil, seq), v); err != nil {
			return err
		}
		return trim(b, seq, MaxEvents)
	})
}

// trim deletes the oldest keys of b until at most n remain. Keys are
// consecutive sequence numbers ending at last.
func trim(b *bolt.Bucket, last uint64, n int) error {
	c := b.Cursor()
	for k, _ := c.First(); k != nil && last-binary.BigEndian.Uint64(k)+1 > uint64(n); k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// Events returns the stored events, oldest first, as raw JSON.
func (db *DB) Events() ([]json.RawMessage, error) {
	var out []json.RawMessage
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return each(tx.Bucket(bucketEvents), bucketEvents, func(_, v []byte) error {
			out = append(out, append(json.RawMessage(nil), v...))
			return nil
		})
	})
	return out, err
}
