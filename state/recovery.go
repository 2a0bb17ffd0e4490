package state

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"allium/internal/safe"

	bolt "go.etcd.io/bbolt"
)

// Recovery is what the node did about a damaged state.db, for the
// operator (`cloud info`).
type Recovery struct {
	// Time is when it happened.
	Time time.Time
	// Damage is what was found wrong; "" when only the key journal
	// changed something.
	Damage string
	// MovedAside is where the damaged file was moved, "" when it was not.
	MovedAside string
	// From is what the state was recovered from: a copy's path, "the
	// file's other meta page", or "" for a fresh file (nothing good was
	// left).
	From string
	// CopyTaken is when the copy in From was taken; zero otherwise.
	CopyTaken time.Time
	// Skipped lists the copies that did not verify either, with why.
	Skipped []string
	// Keys is what the key journal's replay changed.
	Keys KeyReplay
}

// Fresh reports whether nothing good was left: state.db started empty
// (but for the keys of the journal).
func (r Recovery) Fresh() bool { return r.Damage != "" && r.From == "" }

// String says it in one sentence, for the console and `cloud info`.
func (r Recovery) String() string {
	var parts []string
	if r.Damage != "" {
		parts = append(parts, "state.db was damaged ("+r.Damage+")")
	}
	if r.MovedAside != "" {
		parts = append(parts, "moved aside to "+r.MovedAside)
	}
	switch {
	case r.Damage == "":
	case r.From == "":
		parts = append(parts, "no good copy was left, so it started fresh")
	case r.CopyTaken.IsZero():
		parts = append(parts, "recovered from "+r.From)
	default:
		parts = append(parts, fmt.Sprintf("recovered from the copy %s taken %s", r.From, r.CopyTaken.UTC().Format(time.RFC3339)))
	}
	if len(r.Skipped) > 0 {
		parts = append(parts, "damaged copies skipped: "+strings.Join(r.Skipped, "; "))
	}
	k := r.Keys
	if len(k.Revoked) > 0 {
		parts = append(parts, "the key journal revoked again: "+strings.Join(k.Revoked, ", "))
	}
	if len(k.Restored) > 0 {
		parts = append(parts, "the key journal restored: "+strings.Join(k.Restored, ", "))
	}
	if len(k.Clashes) > 0 {
		parts = append(parts, "journal keys left out (a clash with a stored key): "+strings.Join(k.Clashes, ", "))
	}
	if k.Skipped > 0 {
		parts = append(parts, fmt.Sprintf("%d damaged key journal records skipped", k.Skipped))
	}
	if k.Torn {
		parts = append(parts, "a key journal record cut by a power loss was dropped (it was never acknowledged)")
	}
	return strings.Join(parts, "; ")
}

// Recoveries returns every recovery since Open, oldest first.
func (db *DB) Recoveries() []Recovery {
	db.mu.Lock()
	defer db.mu.Unlock()
	return append([]Recovery(nil), db.recoveries...)
}

// OnRecover has f called after each later recovery (one at run time,
// after an accessor met damage), outside any transaction. It also
// calls f for the recoveries Open made.
func (db *DB) OnRecover(f func(Recovery)) {
	db.mu.Lock()
	db.onRecover = f
	done := append([]Recovery(nil), db.recoveries...)
	db.mu.Unlock()
	for _, r := range done {
		f(r)
	}
}

// recoverFile moves the damaged file aside and puts the newest copy
// that verifies in its place, or starts fresh.
func (db *DB) recoverFile(damage error) (*bolt.DB, *Recovery, error) {
	rec := &Recovery{Time: time.Now().UTC(), Damage: damageText(damage)}
	db.log.Error("state: state.db is damaged; recovering", "path", db.path, "err", damage)
	if _, err := os.Stat(db.path); err == nil {
		aside := fmt.Sprintf("%s.corrupt-%s", db.path, time.Now().UTC().Format("20060102T150405.000Z"))
		if err := os.Rename(db.path, aside); err != nil {
			return nil, nil, fmt.Errorf("state: open %s: %w; moving it aside: %w", db.path, damage, err)
		}
		rec.MovedAside = aside
	}
	for _, c := range db.copies.list() {
		if err := verifyFile(c); err != nil {
			rec.Skipped = append(rec.Skipped, filepath.Base(c)+": "+damageText(err))
			continue
		}
		if err := restoreCopy(c, db.path); err != nil {
			rec.Skipped = append(rec.Skipped, filepath.Base(c)+": "+err.Error())
			continue
		}
		b, _, err := openVerified(db.path)
		if err != nil {
			os.Remove(db.path)
			rec.Skipped = append(rec.Skipped, filepath.Base(c)+": "+damageText(err))
			continue
		}
		rec.From, rec.CopyTaken = c, modTime(c)
		return b, rec, nil
	}
	b, _, err := openVerified(db.path)
	if err != nil {
		return nil, nil, fmt.Errorf("state: open a fresh %s after moving the damaged one aside: %w", db.path, err)
	}
	return b, rec, nil
}

// damageText is err without CorruptError's advice, which a Recovery
// says better.
func damageText(err error) string {
	var ce *CorruptError
	if errors.As(err, &ce) {
		if ce.Where == "" {
			return ce.Err.Error()
		}
		return ce.Where + ": " + ce.Err.Error()
	}
	return err.Error()
}

// restoreCopy copies src to dst through a temporary file, fsync'd and
// renamed into place.
func restoreCopy(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".restoring"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	err = errors.Join(err, out.Sync(), out.Close())
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	syncDir(filepath.Dir(dst))
	return nil
}

// damaged starts a recovery at run time, in the background, once at a
// time: an accessor met damage (a value that does not unseal, a panic
// of bbolt) and said so to its caller.
func (db *DB) damaged(err error) {
	if !db.recovering.CompareAndSwap(false, true) {
		return
	}
	db.log.Error("state: damage found while in use; recovering", "err", err)
	time.AfterFunc(0, func() {
		defer db.recovering.Store(false)
		safe.Run(db.log, "state: recover", func() { db.recoverLive() })
	})
}

// recoverLive closes the file, opens the best state (the file itself
// if it verifies after all: the damage may have been a bug's panic),
// and swaps it in; accessors wait meanwhile.
func (db *DB) recoverLive() {
	g := db.bolt
	g.mu.Lock()
	if err := g.b.Close(); err != nil {
		db.log.Warn("state: closing the damaged file", "err", err)
	}
	b, rec, err := db.openBest()
	if err != nil {
		db.log.Error("state: cannot recover state.db; reopening it as it is", "err", err)
		b, err = bolt.Open(db.path, 0o600, &bolt.Options{Timeout: lockTimeout})
		if err != nil {
			db.log.Error("state: cannot reopen state.db", "err", err)
			g.mu.Unlock()
			return
		}
	}
	g.b = b
	g.mu.Unlock()
	if rec == nil {
		db.log.Info("state: state.db verified after an error; it is intact")
		return
	}
	if err := db.settle(rec); err != nil {
		db.log.Error("state: after recovery", "err", err)
	}
	db.copies.schedule()
}
