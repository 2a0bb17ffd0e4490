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

	bolt "go.etcd.io/bbolt"
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
		if r := db.Recoveries(); len(r) != 0 {
			t.Errorf("Open(%s) recovered a healthy database: %v", path, r)
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
	recs := db.Recoveries()
	if len(recs) != 1 || recs[0].MovedAside == "" || !recs[0].Fresh() {
		t.Fatalf("Open(garbage).Recoveries() = %+v, want one, fresh, moved aside", recs)
	}
	kept, err := os.ReadFile(recs[0].MovedAside)
	if err != nil || !bytes.Equal(kept, garbage) {
		t.Errorf("the damaged file was not kept intact at %s: %v", recs[0].MovedAside, err)
	}
	if !strings.Contains(logs.String(), "damaged") {
		t.Errorf("Open(garbage) logged %q, want it to say the file is damaged", logs.String())
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
	if r := db.Recoveries(); len(r) != 1 || r[0].MovedAside == "" {
		t.Errorf("Open(truncated).Recoveries() = %+v, want the file moved aside", r)
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

func TestSuspendResume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.CountBoot(); err != nil {
		t.Fatal(err)
	}
	resume, err := db.Suspend()
	if err != nil {
		t.Fatal(err)
	}
	// Suspended, the file's lock is free: another process (here a
	// second bbolt handle) may open it, as the next init does.
	other, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("bolt.Open of a suspended state.db: %v", err)
	}
	other.Close()
	done := make(chan uint64)
	go func() { n, _ := db.BootCount(); done <- n }()
	if err := resume(); err != nil {
		t.Fatal(err)
	}
	if n := <-done; n != 1 {
		t.Errorf("BootCount() after resume = %d, want 1", n)
	}
}
