package state

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestBootCountPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	for want := uint64(1); want <= 3; want++ {
		db, err := Open(path, quiet())
		if err != nil {
			t.Fatal(err)
		}
		n, err := db.CountBoot()
		if err != nil || n != want {
			t.Errorf("CountBoot() = %d, %v, want %d", n, err, want)
		}
		if db.MovedAside != "" {
			t.Errorf("Open(%s) moved a healthy database aside to %s", path, db.MovedAside)
		}
		db.Close()
	}
}

func TestOpenRecoversFromGarbage(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	garbage := bytes.Repeat([]byte("not a bbolt file "), 2000)
	if err := os.WriteFile(path, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	db, err := Open(path, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("Open(garbage) = %v, want a fresh database", err)
	}
	defer db.Close()
	if db.MovedAside == "" {
		t.Fatalf("Open(garbage): MovedAside is empty")
	}
	kept, err := os.ReadFile(db.MovedAside)
	if err != nil || !bytes.Equal(kept, garbage) {
		t.Errorf("the damaged file was not kept intact at %s: %v", db.MovedAside, err)
	}
	if !strings.Contains(logs.String(), "moving it aside") {
		t.Errorf("Open(garbage) logged %q, want it to say it moved the file aside", logs.String())
	}
	if n, err := db.CountBoot(); n != 1 || err != nil {
		t.Errorf("CountBoot() on the fresh database = %d, %v, want 1", n, err)
	}
}

func TestOpenTruncated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(path, quiet())
	if err != nil {
		t.Fatal(err)
	}
	db.CountBoot()
	db.Close()
	if err := os.Truncate(path, 100); err != nil {
		t.Fatal(err)
	}
	db, err = Open(path, quiet())
	if err != nil {
		t.Fatalf("Open(truncated) = %v", err)
	}
	defer db.Close()
	if db.MovedAside == "" {
		t.Errorf("Open(truncated) did not move the file aside")
	}
}

func TestSeedKeysOnlyOnce(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "state.db"), quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	first := []Key{{Public: bytes.Repeat([]byte{1}, 32), Name: "laptop"}}
	if ok, err := db.SeedKeys(first); !ok || err != nil {
		t.Fatalf("SeedKeys(empty db) = %v, %v, want true", ok, err)
	}
	if ok, err := db.SeedKeys([]Key{{Public: bytes.Repeat([]byte{2}, 32), Name: "other"}}); ok || err != nil {
		t.Errorf("SeedKeys(seeded db) = %v, %v, want false", ok, err)
	}
	keys, err := db.Keys()
	if err != nil || len(keys) != 1 || keys[0].Name != "laptop" {
		t.Errorf("Keys() = %v, %v, want the one seeded key", keys, err)
	}
}

func TestAlive(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "state.db"), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if a, err := db.Alive(); err != nil || a != (Alive{}) {
		t.Errorf("Alive() on a new database = %+v, %v; want the zero Alive", a, err)
	}
	want := Alive{Boot: 3, Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Shutdown: "operator"}
	if err := db.SetAlive(want); err != nil {
		t.Fatal(err)
	}
	if a, err := db.Alive(); err != nil || !a.Time.Equal(want.Time) || a.Boot != 3 || a.Shutdown != "operator" {
		t.Errorf("Alive() = %+v, %v; want %+v", a, err, want)
	}
}
