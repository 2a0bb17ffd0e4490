package state

import (
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Roles of Key.Role.
const (
	// RoleAdmin may do everything. The empty role means admin too, so
	// keys stored before roles existed keep their rights.
	RoleAdmin = "admin"
)

// Key is an authorized client: its raw ed25519 TLS public key, the raw
// x25519 public key tor's client authorization needs (nil for a client
// that only uses TCP), a name for people, and its role.
type Key struct {
	Public []byte
	Onion  []byte
	Name   string
	Role   string
	Added  time.Time
}

// keyValue is how a Key is stored, under its Public key. Databases
// written before onion keys existed hold the bare name instead.
type keyValue struct {
	Name  string    `json:"name"`
	Onion []byte    `json:"onion,omitempty"`
	Role  string    `json:"role,omitempty"`
	Added time.Time `json:"added,omitzero"`
}

func encodeKey(k Key) ([]byte, error) {
	return json.Marshal(keyValue{Name: k.Name, Onion: k.Onion, Role: k.Role, Added: k.Added})
}

func decodeKey(pub, v []byte) Key {
	k := Key{Public: append([]byte(nil), pub...)}
	var kv keyValue
	if len(v) > 0 && v[0] == '{' && json.Unmarshal(v, &kv) == nil {
		k.Name, k.Onion, k.Role, k.Added = kv.Name, kv.Onion, kv.Role, kv.Added
		return k
	}
	k.Name = string(v)
	return k
}

// Keys returns the authorized client keys.
func (db *DB) Keys() ([]Key, error) {
	var keys []Key
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).ForEach(func(k, v []byte) error {
			keys = append(keys, decodeKey(k, v))
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
			v, err := encodeKey(k)
			if err != nil {
				return err
			}
			if err := b.Put(k.Public, v); err != nil {
				return err
			}
		}
		seeded = true
		return nil
	})
	return seeded, err
}
