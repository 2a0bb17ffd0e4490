package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Roles of Key.Role.
const (
	// RoleAdmin may do everything. The empty role means admin too, so
	// keys stored before roles existed keep their rights.
	RoleAdmin = "admin"
	// RoleViewer may read (GET and HEAD) and nothing else.
	RoleViewer = "viewer"
)

// Errors of AddKey and RemoveKey, checked with errors.Is.
var (
	// ErrKeyConflict: the key, its name or its onion key is already
	// stored with other fields.
	ErrKeyConflict = errors.New("conflicts with a stored key")
	// ErrKeyNotFound: no stored key matches.
	ErrKeyNotFound = errors.New("no such key")
	// ErrKeyAmbiguous: several stored keys match.
	ErrKeyAmbiguous = errors.New("matches several keys")
	// ErrLastAdmin: the removal would leave no admin key, and with it
	// no way to manage the node remotely.
	ErrLastAdmin = errors.New("it is the last admin key")
)

// Key is an authorized client: its raw ed25519 TLS public key, the raw
// x25519 public key tor's client authorization needs (nil for a client
// that only uses TCP), a name for people, and its role.
type Key struct {
	Public []byte
	Onion  []byte
	Name   string
	// Role is RoleAdmin or RoleViewer; "" means RoleAdmin.
	Role string
	// Added is when AddKey stored it; zero for keys seeded at first
	// boot from a database that did not record it.
	Added time.Time
}

// IsAdmin reports whether k has the admin role.
func (k Key) IsAdmin() bool { return k.Role == "" || k.Role == RoleAdmin }

// same reports whether k and o are the same client with the same fields
// (Added aside).
func (k Key) same(o Key) bool {
	return bytes.Equal(k.Public, o.Public) && bytes.Equal(k.Onion, o.Onion) &&
		k.Name == o.Name && k.IsAdmin() == o.IsAdmin() && (k.IsAdmin() || k.Role == o.Role)
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

// Key returns the stored key whose Public is pub, and false when there
// is none.
func (db *DB) Key(pub []byte) (Key, bool, error) {
	var k Key
	found := false
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketKeys).Get(pub); v != nil {
			k, found = decodeKey(pub, v), true
		}
		return nil
	})
	return k, found, err
}

// AddKey stores k, setting Added to now when it is zero, and reports
// whether it was new. Adding a key that is stored with the same fields
// changes nothing (a retried request); it returns the stored one with
// created false. The same public key with other fields, another key of
// the same name, or another key with the same onion key is
// ErrKeyConflict: one client, one entry, so that removing it locks the
// client out everywhere.
func (db *DB) AddKey(k Key) (stored Key, created bool, err error) {
	if len(k.Public) == 0 || k.Name == "" {
		return Key{}, false, fmt.Errorf("state: add key %q: a key needs a public key and a name", k.Name)
	}
	if k.Added.IsZero() {
		k.Added = time.Now().UTC()
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKeys)
		if v := b.Get(k.Public); v != nil {
			old := decodeKey(k.Public, v)
			if !old.same(k) {
				return fmt.Errorf("state: add key %q: this public key is already stored as %q (role %s): %w", k.Name, old.Name, roleName(old.Role), ErrKeyConflict)
			}
			stored = old
			return nil
		}
		if err := checkClash(b, k); err != nil {
			return err
		}
		v, err := encodeKey(k)
		if err != nil {
			return err
		}
		stored, created = k, true
		return b.Put(k.Public, v)
	})
	if err != nil {
		return Key{}, false, err
	}
	return stored, created, nil
}

// checkClash returns ErrKeyConflict when another stored key has k's
// name or onion key.
func checkClash(b *bolt.Bucket, k Key) error {
	return b.ForEach(func(pub, v []byte) error {
		old := decodeKey(pub, v)
		switch {
		case old.Name == k.Name:
			return fmt.Errorf("state: add key %q: another key already has that name: %w", k.Name, ErrKeyConflict)
		case k.Onion != nil && bytes.Equal(old.Onion, k.Onion):
			return fmt.Errorf("state: add key %q: key %q already has that onion key: %w", k.Name, old.Name, ErrKeyConflict)
		}
		return nil
	})
}

// RemoveKey deletes the one stored key for which match is true and
// returns it. No match is ErrKeyNotFound, several are ErrKeyAmbiguous,
// and removing the only admin key is ErrLastAdmin; then nothing
// changes. The check and the removal are one transaction.
func (db *DB) RemoveKey(match func(Key) bool) (Key, error) {
	var gone Key
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKeys)
		var found []Key
		admins := 0
		b.ForEach(func(pub, v []byte) error {
			k := decodeKey(pub, v)
			if k.IsAdmin() {
				admins++
			}
			if match(k) {
				found = append(found, k)
			}
			return nil
		})
		switch {
		case len(found) == 0:
			return ErrKeyNotFound
		case len(found) > 1:
			return fmt.Errorf("%d keys (%s and %s): %w", len(found), found[0].Name, found[1].Name, ErrKeyAmbiguous)
		case found[0].IsAdmin() && admins == 1:
			return fmt.Errorf("key %q: %w", found[0].Name, ErrLastAdmin)
		}
		gone = found[0]
		return b.Delete(gone.Public)
	})
	if err != nil {
		return Key{}, fmt.Errorf("state: remove key: %w", err)
	}
	return gone, nil
}

func roleName(role string) string {
	if role == "" {
		return RoleAdmin
	}
	return role
}
