package state

import (
	"path/filepath"
	"testing"
)

func TestTCPChoicePersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(path, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if on, set, err := db.TCP(); on || set || err != nil {
		t.Errorf("TCP() on a new database = %v, %v, %v; want no choice made", on, set, err)
	}
	if err := db.SetTCP(false); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(path, quiet()); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if on, set, err := db.TCP(); on || !set || err != nil {
		t.Errorf("TCP() after SetTCP(false) and a reopen = %v, %v, %v; want off, set", on, set, err)
	}
	db.SetTCP(true)
	if on, set, _ := db.TCP(); !on || !set {
		t.Errorf("TCP() after SetTCP(true) = %v, %v; want on, set", on, set)
	}
}
