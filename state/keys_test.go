package state

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openTemp(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "state.db"), quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func testKey(b byte, name, role string) Key {
	return Key{Public: bytes.Repeat([]byte{b}, 32), Onion: bytes.Repeat([]byte{b + 100}, 32), Name: name, Role: role}
}

func byName(name string) func(Key) bool { return func(k Key) bool { return k.Name == name } }

func TestAddKeyIdempotent(t *testing.T) {
	db := openTemp(t)
	k := testKey(1, "laptop", RoleAdmin)
	first, created, err := db.AddKey(k)
	if err != nil || !created || first.Added.IsZero() {
		t.Fatalf("AddKey(laptop) = %+v, %v, %v, want created with Added set", first, created, err)
	}
	// A retry over a flaky link sends the same key again.
	again, created, err := db.AddKey(k)
	if err != nil || created || !again.Added.Equal(first.Added) {
		t.Errorf("AddKey(laptop) again = %+v, %v, %v, want the stored key, not created", again, created, err)
	}
	// The empty role is admin: the same key.
	k.Role = ""
	if _, created, err := db.AddKey(k); err != nil || created {
		t.Errorf("AddKey(laptop, role \"\") = %v, %v, want the same key as role admin", created, err)
	}
	keys, err := db.Keys()
	if err != nil || len(keys) != 1 {
		t.Errorf("Keys() = %v, %v, want one key", keys, err)
	}
	got, ok, err := db.Key(k.Public)
	if err != nil || !ok || !got.same(k) {
		t.Errorf("Key(laptop) = %+v, %v, %v", got, ok, err)
	}
	if _, ok, err := db.Key(bytes.Repeat([]byte{9}, 32)); ok || err != nil {
		t.Errorf("Key(unknown) = %v, %v, want not found", ok, err)
	}
}

func TestAddKeyConflicts(t *testing.T) {
	db := openTemp(t)
	if _, _, err := db.AddKey(testKey(1, "laptop", RoleAdmin)); err != nil {
		t.Fatal(err)
	}
	renamed := testKey(1, "desk", RoleAdmin)
	viewer := testKey(1, "laptop", RoleViewer)
	noOnion := testKey(1, "laptop", RoleAdmin)
	noOnion.Onion = nil
	sameName := testKey(2, "laptop", RoleAdmin)
	sameOnion := testKey(2, "phone", RoleViewer)
	sameOnion.Onion = testKey(1, "", "").Onion
	for name, k := range map[string]Key{
		"same TLS key, other name":  renamed,
		"same TLS key, other role":  viewer,
		"same TLS key, no onion":    noOnion,
		"other TLS key, same name":  sameName,
		"other TLS key, same onion": sameOnion,
	} {
		if _, created, err := db.AddKey(k); !errors.Is(err, ErrKeyConflict) || created {
			t.Errorf("AddKey(%s) = %v, %v, want ErrKeyConflict", name, created, err)
		}
	}
	if keys, _ := db.Keys(); len(keys) != 1 {
		t.Errorf("Keys() after conflicts = %d keys, want 1", len(keys))
	}
	if _, _, err := db.AddKey(Key{Public: []byte{1}}); err == nil {
		t.Errorf("AddKey(no name) = nil error")
	}
}

func TestRemoveKey(t *testing.T) {
	db := openTemp(t)
	for _, k := range []Key{testKey(1, "laptop", ""), testKey(2, "ci", RoleViewer), testKey(3, "desk", RoleAdmin)} {
		if _, _, err := db.AddKey(k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.RemoveKey(byName("nosuch")); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("RemoveKey(nosuch) = %v, want ErrKeyNotFound", err)
	}
	if _, err := db.RemoveKey(func(Key) bool { return true }); !errors.Is(err, ErrKeyAmbiguous) {
		t.Errorf("RemoveKey(every key) = %v, want ErrKeyAmbiguous", err)
	}
	gone, err := db.RemoveKey(byName("desk"))
	if err != nil || gone.Name != "desk" || !bytes.Equal(gone.Public, testKey(3, "", "").Public) {
		t.Fatalf("RemoveKey(desk) = %+v, %v", gone, err)
	}
	// laptop, whose empty role means admin, is now the only admin; a
	// viewer does not count.
	if _, err := db.RemoveKey(byName("laptop")); !errors.Is(err, ErrLastAdmin) {
		t.Errorf("RemoveKey(last admin) = %v, want ErrLastAdmin", err)
	}
	if _, err := db.RemoveKey(byName("ci")); err != nil {
		t.Errorf("RemoveKey(viewer) = %v", err)
	}
	keys, err := db.Keys()
	if err != nil || len(keys) != 1 || keys[0].Name != "laptop" {
		t.Errorf("Keys() = %+v, %v, want laptop alone", keys, err)
	}
	if _, err := db.RemoveKey(byName("desk")); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("RemoveKey(desk) twice = %v, want ErrKeyNotFound", err)
	}
}

func TestKeysPersistAndOldFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(path, quiet())
	if err != nil {
		t.Fatal(err)
	}
	// A database from before onion keys holds the bare name.
	old := bytes.Repeat([]byte{7}, 32)
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return put(tx.Bucket(bucketKeys), bucketKeys, old, []byte("old laptop")) }); err != nil {
		t.Fatal(err)
	}
	added := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	k := testKey(1, "ci", RoleViewer)
	k.Added = added
	if _, _, err := db.AddKey(k); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(path, quiet()); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, ok, err := db.Key(old)
	if err != nil || !ok || got.Name != "old laptop" || !got.IsAdmin() || got.Onion != nil {
		t.Errorf("Key(old format) = %+v, %v, %v, want the name and the admin role", got, ok, err)
	}
	got, ok, err = db.Key(k.Public)
	if err != nil || !ok || !got.same(k) || !got.Added.Equal(added) {
		t.Errorf("Key(ci) after reopening = %+v, %v, %v, want %+v", got, ok, err, k)
	}
}
