package state

import (
	bolt "go.etcd.io/bbolt"
)

// Key is an authorized client key: the raw ed25519 public key and a name
// for people.
type Key struct {
	Public []byte
	Name   string
}

// Keys returns the authorized client keys.
func (db *DB) Keys() ([]Key, error) {
	var keys []Key
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).ForEach(func(k, v []byte) error {
			keys = append(keys, Key{Public: append([]byte(nil), k...), Name: string(v)})
			return nil
		})
	})
	return keys, err
}

// SeedKeys stores keys when no key is stored yet, and reports whether it
// did. The baked authorized_keys seed the database on the first boot;
// after that the database is the truth.
func (db *DB) SeedKeys(keys []Key) (bool, error) {
	seeded := false
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKeys)
		if k, _ := b.Cursor().First(); k != nil {
			return nil
		}
		for _, k := range keys {
			if err := b.Put(k.Public, []byte(k.Name)); err != nil {
				return err
			}
		}
		seeded = true
		return nil
	})
	return seeded, err
}
