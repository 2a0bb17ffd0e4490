package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"allium/internal/boltpage"
)

// The issue-10 bug: one damaged page of state.db (the containers page,
// its headers intact) went undetected and made every call fail, and a
// file damaged enough to be noticed was replaced by a fresh one seeded
// from the baked keys: a revoked admin key worked again, run-time keys
// and every container record were lost. These damage a copy of a real
// file at each page type and check what Open makes of it.

const fixtureContainers = 200

var (
	bakedKey = testKey(1, "baked", RoleAdmin)
	opsKey   = testKey(2, "ops", RoleAdmin)
	lateKey  = testKey(3, "late", RoleViewer)
)

// fixture makes a state.db with keys and containers and one copy, then
// revokes the baked key and adds one after the copy, and stops as a
// power cut would (no last copy).
func fixture(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := OpenWith(path, Options{Log: quiet(), CopyEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SeedKeys([]Key{bakedKey}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.AddKey(opsKey); err != nil {
		t.Fatal(err)
	}
	hist := json.RawMessage(fmt.Sprintf(`{"note":%q}`, strings.Repeat("h", 300)))
	for i := range fixtureContainers {
		if err := db.PutContainer(Container{Name: fmt.Sprintf("c%03d", i), Image: "sha256:aa", Running: true, History: hist}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 { // some freed pages for the freelist
		db.UpdateContainer(fmt.Sprintf("c%03d", i), func(c *Container) { c.Running = false })
	}
	waitCopies(t, db, 1) // the one Open scheduled
	if _, err := db.Copy(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RemoveKey(byName("baked")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.AddKey(lateKey); err != nil {
		t.Fatal(err)
	}
	powerCut(db)
	return path
}

// powerCut closes db without the last copy Close takes.
func powerCut(db *DB) {
	db.copies.mu.Lock()
	db.copies.dirty = false
	db.copies.mu.Unlock()
	db.Close()
}

func waitCopies(t *testing.T, db *DB, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); len(db.copies.list()) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d copies after 5s, want %d", len(db.copies.list()), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readPages(t *testing.T, path string) *boltpage.File {
	t.Helper()
	f, err := boltpage.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func find(t *testing.T, f *boltpage.File, typ, bucket string) boltpage.Page {
	t.Helper()
	p, ok := f.Find(typ, bucket)
	if !ok {
		t.Fatalf("no %s page of bucket %q in %s", typ, bucket, f.Path)
	}
	return p
}

func TestDamagedAtEachPageType(t *testing.T) {
	cases := []struct {
		name string
		// damage damages the file; fromCopy: the state comes from the copy
		// (else the file itself is used, from its other meta page).
		damage   func(t *testing.T, path string)
		fromCopy bool
	}{
		{"newest meta page", func(t *testing.T, path string) {
			f := readPages(t, path)
			f.Flip(f.NewestMeta(), 16+40, 4)
		}, false},
		{"both meta pages", func(t *testing.T, path string) {
			f := readPages(t, path)
			f.Flip(0, 16+40, 4)
			f.Flip(1, 16+40, 4)
		}, true},
		{"freelist page", func(t *testing.T, path string) {
			f := readPages(t, path)
			f.Flip(find(t, f, boltpage.Freelist, "").ID, 16, 8)
		}, true},
		{"containers branch page", func(t *testing.T, path string) {
			f := readPages(t, path)
			f.Flip(find(t, f, boltpage.Branch, "containers").ID, 16+8, 4) // the first child's page id
		}, true},
		{"containers leaf page, a value (headers intact)", func(t *testing.T, path string) {
			f := readPages(t, path)
			p := find(t, f, boltpage.Leaf, "containers")
			f.Flip(p.ID, p.Elems[0].ValOff+p.Elems[0].ValLen/2, 2)
		}, true},
		{"containers leaf page, a key (headers intact)", func(t *testing.T, path string) {
			f := readPages(t, path)
			p := find(t, f, boltpage.Leaf, "containers")
			f.Flip(p.ID, p.Elems[1].KeyOff+1, 1)
		}, true},
		{"containers leaf page, an element header", func(t *testing.T, path string) {
			f := readPages(t, path)
			p := find(t, f, boltpage.Leaf, "containers")
			f.Flip(p.ID, 16+4, 4) // the first element's pos
		}, true},
		{"root bucket's leaf page, a bucket name", func(t *testing.T, path string) {
			f := readPages(t, path)
			p := find(t, f, boltpage.Leaf, "")
			for _, e := range p.Elems {
				if string(e.Key) == "containers" {
					f.Flip(p.ID, e.KeyOff, 1)
				}
			}
		}, true},
		{"destroyed", func(t *testing.T, path string) { os.Remove(path) }, true},
		{"zeroed", func(t *testing.T, path string) {
			st, _ := os.Stat(path)
			os.WriteFile(path, make([]byte, st.Size()), 0o600)
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := fixture(t)
			tc.damage(t, path)
			db, err := OpenWith(path, Options{Log: quiet(), CopyEvery: time.Hour})
			if err != nil {
				t.Fatalf("Open(damaged) = %v", err)
			}
			defer db.Close()
			recs := db.Recoveries()
			if len(recs) == 0 || recs[0].Damage == "" {
				t.Fatalf("Recoveries() = %+v, want the damage found", recs)
			}
			rec := recs[0]
			t.Logf("recovery: %s", rec)
			if got := strings.HasSuffix(rec.From, ".db"); got != tc.fromCopy || rec.From == "" {
				t.Errorf("Recovery.From = %q, want a copy: %v", rec.From, tc.fromCopy)
			}
			checkKeys(t, db)
			cs, err := db.Containers()
			if err != nil || len(cs) != fixtureContainers {
				t.Errorf("Containers() = %d, %v, want %d", len(cs), err, fixtureContainers)
			}
			if _, err := db.CountBoot(); err != nil {
				t.Errorf("CountBoot() after recovery = %v", err)
			}
		})
	}
}

// checkKeys: the key revoked at run time stays refused, the keys added
// at run time are there.
func checkKeys(t *testing.T, db *DB) {
	t.Helper()
	if _, ok, err := db.Key(bakedKey.Public); ok || err != nil {
		t.Errorf("Key(baked, revoked) = %v, %v, want refused", ok, err)
	}
	for _, k := range []Key{opsKey, lateKey} {
		if got, ok, err := db.Key(k.Public); !ok || err != nil || got.Name != k.Name {
			t.Errorf("Key(%s) = %+v, %v, %v, want it", k.Name, got, ok, err)
		}
	}
	if seeded, err := db.SeedKeys([]Key{bakedKey}); seeded || err != nil {
		t.Errorf("SeedKeys(baked) after recovery = %v, %v, want no seeding (the journal is the truth)", seeded, err)
	}
	keys, err := db.Keys()
	if err != nil || len(keys) != 2 {
		t.Errorf("Keys() = %+v, %v, want ops and late", keys, err)
	}
}

func TestDestroyedWithItsCopies(t *testing.T) {
	path := fixture(t)
	os.Remove(path)
	os.RemoveAll(path + ".copies")
	db, err := Open(path, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	recs := db.Recoveries()
	if len(recs) != 1 || !recs[0].Fresh() {
		t.Fatalf("Recoveries() = %+v, want one, fresh", recs)
	}
	if !strings.Contains(recs[0].String(), "restored: ops, late") {
		t.Errorf("Recovery = %q, want it to name the keys restored", recs[0])
	}
	checkKeys(t, db)
	if cs, _ := db.Containers(); len(cs) != 0 {
		t.Errorf("Containers() = %d, want none (apps rebuilds them from disk)", len(cs))
	}
}

func TestAllCopiesDamagedStartsFresh(t *testing.T) {
	path := fixture(t)
	os.Remove(path)
	copies, _ := filepath.Glob(path + ".copies/*.db")
	for _, c := range copies {
		f := readPages(t, c)
		p := find(t, f, boltpage.Leaf, "*")
		f.Flip(p.ID, p.Elems[0].KeyOff, 1)
	}
	db, err := Open(path, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rec := db.Recoveries()[0]
	if !rec.Fresh() || len(rec.Skipped) != len(copies) {
		t.Errorf("Recovery = %+v, want fresh with %d copies skipped", rec, len(copies))
	}
	checkKeys(t, db)
}

// Damage met while the node runs answers a CorruptError (a 503, not a
// 500), and the node recovers in the background: the next call works.
func TestDamageOnUseRecovers(t *testing.T) {
	path := fixture(t)
	db, err := OpenWith(path, Options{Log: quiet(), CopyEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if len(db.Recoveries()) != 0 {
		t.Fatalf("Recoveries() of an intact file = %+v", db.Recoveries())
	}
	// The boot's copy runs in the background: let it finish first, or
	// it meets the damage and recovers before the call below.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		db.copies.mu.Lock()
		pending := db.copies.timer != nil
		db.copies.mu.Unlock()
		db.copies.copying.Lock()
		db.copies.copying.Unlock()
		if !pending || time.Now().After(deadline) {
			break
		}
	}
	f := readPages(t, path)
	p := find(t, f, boltpage.Leaf, "containers")
	f.Flip(p.ID, p.Elems[0].ValOff+10, 2)
	_, err = db.Containers()
	var ce *CorruptError
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) || !ce.Unavailable() {
		t.Fatalf("Containers() on a damaged page = %v, want a CorruptError", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cs, err := db.Containers()
		if err == nil && len(db.Recoveries()) > 0 { // the swap, then its record
			if len(cs) != fixtureContainers {
				t.Errorf("Containers() after recovery = %d, want %d", len(cs), fixtureContainers)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Containers() still %v after 10s", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if recs := db.Recoveries(); len(recs) != 1 || !strings.HasSuffix(recs[0].From, ".db") {
		t.Errorf("Recoveries() = %+v, want one from a copy", recs)
	}
	checkKeys(t, db)
}

func TestCopiesAreKeptAndRotated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := OpenWith(path, Options{Log: quiet(), CopyEvery: 10 * time.Millisecond, Copies: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		db.PutContainer(Container{Name: fmt.Sprint("c", i), Image: "sha256:aa"})
		time.Sleep(30 * time.Millisecond)
	}
	db.PutContainer(Container{Name: "last", Image: "sha256:aa"})
	db.Close() // takes the last copy
	names, _ := filepath.Glob(path + ".copies/*.db")
	if len(names) != 2 {
		t.Fatalf("copies = %v, want 2", names)
	}
	os.Remove(path)
	db, err = Open(path, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.record("last"); err != nil {
		t.Errorf("the container written just before Close is not in the newest copy: %v", err)
	}
}

func (db *DB) record(name string) (Container, error) {
	cs, err := db.Containers()
	for _, c := range cs {
		if c.Name == name {
			return c, nil
		}
	}
	return Container{}, errors.Join(err, errors.New("not found"))
}

// A journal whose last line was cut by a power loss loses only that
// line, and the next record starts on a line of its own.
func TestJournalTornLine(t *testing.T) {
	path := fixture(t)
	jp := path + ".keys"
	data, _ := os.ReadFile(jp)
	os.WriteFile(jp, append(data, []byte(`0badf00d {"seq":99,"op":"rev`)...), 0o600)
	db, err := Open(path, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.AddKey(testKey(4, "after", RoleAdmin)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	data, _ = os.ReadFile(jp)
	if bytes.Contains(data, []byte(`"rev`+"\n")) || bytes.Count(data, []byte("\n")) != 5 {
		t.Errorf("journal after a torn line and one add:\n%s", data)
	}
	db, err = Open(path, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkKeys2 := func() {
		if _, ok, _ := db.Key(testKey(4, "after", RoleAdmin).Public); !ok {
			t.Errorf("the key added after the torn line is gone")
		}
	}
	checkKeys2()
}
