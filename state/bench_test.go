package state

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"allium/internal/testkit"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkRecovery is the issue's "recovery time of state.db from its
// newest copy on a 10,000-container state": Open of a destroyed file
// (verify the copy, copy it into place, open and verify it, replay the
// key journal) against peers measured in the same run: Open of the
// intact file (its verification: bbolt's check and every checksum),
// a bare bbolt open and read of every record with no verification, and
// copying the file. Each is the median of a few rounds.
func BenchmarkRecovery(b *testing.B) {
	const containers = 10000
	dir := b.TempDir()
	path := filepath.Join(dir, "state.db")
	db, err := OpenWith(path, Options{Log: quiet(), CopyEvery: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	hist := json.RawMessage(`{"restarts":3,"failures":["2025-01-01T00:00:00Z","2025-01-01T00:01:00Z"],"last":{"code":1}}`)
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketContainers)
		for i := range containers {
			c := Container{Name: fmt.Sprintf("c%05d", i), Image: "sha256:" + strings.Repeat("a", 64), Running: true, History: hist,
				Isolation: "namespaces", Created: time.Now(), Updated: time.Now()}
			v, _ := json.Marshal(c)
			if err := put(bk, bucketContainers, []byte(c.Name), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	db.AddKey(testKey(1, "ops", RoleAdmin))
	if _, err := db.Copy(); err != nil {
		b.Fatal(err)
	}
	db.Close()
	st, _ := os.Stat(path)
	b.Logf("state.db: %d containers, %.1f MB; load average %s", containers, float64(st.Size())/1e6, testkit.LoadAverage())

	intact := filepath.Join(dir, "intact.db")
	copyFile(b, path, intact)
	const rounds = 5
	var recover, open, bare, cp []time.Duration
	for range rounds {
		cp = append(cp, timed(func() { copyFile(b, intact, path) }))
		open = append(open, openClose(b, path, false))
		bare = append(bare, timed(func() { bareRead(b, path) }))
		os.Remove(path)
		recover = append(recover, openClose(b, path, true))
	}
	b.ReportMetric(0, "ns/op")
	r, o, br, c := median(recover), median(open), median(bare), median(cp)
	b.ReportMetric(r.Seconds()*1000, "recover-ms")
	b.ReportMetric(o.Seconds()*1000, "open-verified-ms")
	b.ReportMetric(br.Seconds()*1000, "open-bare-ms")
	b.ReportMetric(c.Seconds()*1000, "copy-ms")
	b.ReportMetric(r.Seconds()/o.Seconds(), "recover/open-verified")
	b.ReportMetric(o.Seconds()/br.Seconds(), "verified/bare")
	b.ReportMetric(r.Seconds()/c.Seconds(), "recover/copy")
	b.Logf("recover %v, open verified %v, open bare %v, copy %v (medians of %d); load average %s", r, o, br, c, rounds, testkit.LoadAverage())
}

// openClose returns how long Open took (not the copy it schedules, nor
// Close).
func openClose(b *testing.B, path string, wantRecovery bool) time.Duration {
	start := time.Now()
	db, err := OpenWith(path, Options{Log: quiet(), CopyEvery: time.Hour})
	took := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	if got := len(db.Recoveries()) > 0; got != wantRecovery {
		b.Fatalf("Open(%s) recovered: %v, want %v", path, got, wantRecovery)
	}
	powerCut(db)
	return took
}

// bareRead opens with bbolt alone and reads every container record.
func bareRead(b *testing.B, path string) {
	bd, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer bd.Close()
	bd.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketContainers).ForEach(func(_, v []byte) error { return nil })
	})
}

func copyFile(b *testing.B, src, dst string) {
	in, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(out, in)
	out.Sync()
	out.Close()
}

func timed(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
