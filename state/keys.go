package state

import (
	"bytes"
	"encoding/json"
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

// putKey stores k, sealed, under its public key.
func putKey(b *bolt.Bucket, k Key) error {
	v, err := encodeKey(k)
	if err != nil {
		return err
	}
	return put(b, bucketKeys, k.Public, v)
}

// eachKey calls f with every stored key.
func eachKey(b *bolt.Bucket, f func(Key) error) error {
	return each(b, bucketKeys, func(pub, v []byte) error { return f(decodeKey(pub, v)) })
}

// Keys returns the authorized client keys: those of state.db that the
// key journal does not say were revoked.
func (db *DB) Keys() ([]Key, error) {
	var keys []Key
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return eachKey(tx.Bucket(bucketKeys), func(k Key) error {
			if !db.journal.revoked(k.Public) {
				keys = append(keys, k)
			}
			return nil
		})
	})
	return keys, err
}

// SeedKeys stores keys when no key is stored yet and the key journal
// is empty, and reports whether it did. The baked authorized_keys seed
// the database on the first boot; after that the database and the
// journal are the truth: a state.db recovered fresh gets its keys from
// the journal, not from the baked file (whose keys may have been
// revoked since).
func (db *DB) SeedKeys(keys []Key) (bool, error) {
	if !db.journal.empty() {
		return false, nil
	}
	seeded := false
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKeys)
		if k, _ := b.Cursor().First(); k != nil {
			return nil
		}
		for _, k := range keys {
			if err := db.journal.append(opAdd, k); err != nil {
				return err
			}
			if err := putKey(b, k); err != nil {
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
		v, err := get(tx.Bucket(bucketKeys), bucketKeys, pub)
		if v != nil {
			k, found = decodeKey(pub, v), true
		}
		return err
	})
	if found && db.journal.revoked(pub) {
		return Key{}, false, err
	}
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
		v, err := get(b, bucketKeys, k.Public)
		if err != nil {
			return err
		}
		if v != nil && !db.journal.revoked(k.Public) {
			old := decodeKey(k.Public, v)
			if !old.same(k) {
				return fmt.Errorf("state: add key %q: this public key is already stored as %q (role %s): %w", k.Name, old.Name, roleName(old.Role), ErrKeyConflict)
			}
			stored = old
			// A retry after a failed journal write writes it now.
			return db.journal.append(opAdd, old)
		}
		if err := checkClash(b, k); err != nil {
			return err
		}
		stored, created = k, true
		if err := db.journal.append(opAdd, k); err != nil {
			return err
		}
		return putKey(b, k)
	})
	if err != nil {
		return Key{}, false, err
	}
	return stored, created, nil
}

// checkClash returns ErrKeyConflict when another stored key has k's
// name or onion key.
func checkClash(b *bolt.Bucket, k Key) error {
	return eachKey(b, func(old Key) error {
		switch {
		case bytes.Equal(old.Public, k.Public):
			return nil
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
		err := eachKey(b, func(k Key) error {
			if db.journal.revoked(k.Public) {
				return nil
			}
			if k.IsAdmin() {
				admins++
			}
			if match(k) {
				found = append(found, k)
			}
			return nil
		})
		switch {
		case err != nil:
			return err
		case len(found) == 0:
			return ErrKeyNotFound
		case len(found) > 1:
			return fmt.Errorf("%d keys (%s and %s): %w", len(found), found[0].Name, found[1].Name, ErrKeyAmbiguous)
		case found[0].IsAdmin() && admins == 1:
			return fmt.Errorf("key %q: %w", found[0].Name, ErrLastAdmin)
		}
		gone = found[0]
		// The journal first: a revocation is never lost, even if the
		// commit that follows is.
		if err := db.journal.append(opRevoke, gone); err != nil {
			return err
		}
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
