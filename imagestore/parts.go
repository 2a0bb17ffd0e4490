package imagestore

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Partial uploads: ROOT/uploads/HEX.part holds what arrived of an
// archive, HEX.length its declared length. They are kept so that a
// client resumes after an interruption, listed (Partials, `cloud images
// --partial`), removed with their image's digest (Remove, `cloud rmi`),
// and dropped once untouched for PartMaxAge (ExpireParts, run by Open,
// GC, Partials, and before an upload is refused for space).

// DefaultPartMaxAge is how long a partial upload is kept untouched: a
// client resumes within minutes; a day covers a laptop closed
// overnight, and no longer holds the disk for one that never returns.
const DefaultPartMaxAge = 24 * time.Hour

// Partial is an upload the node has part of.
type Partial struct {
	Digest string
	// Size is how many bytes the node has kept.
	Size int64
	// Length is the archive's declared length; 0 when unknown.
	Length int64
	// Modified is when a byte was last written to it.
	Modified time.Time
	// Expires is when it is dropped unless written to again.
	Expires time.Time
	// Active is true while an upload of it is in flight.
	Active bool
}

func (s *Store) partMaxAge() time.Duration {
	return cmp.Or(s.PartMaxAge, DefaultPartMaxAge)
}

// Partials lists the partial uploads, oldest first, after dropping the
// expired ones.
func (s *Store) Partials() ([]Partial, error) {
	s.ExpireParts()
	entries, err := os.ReadDir(s.path(uploadsDir))
	if err != nil {
		return nil, fmt.Errorf("imagestore: %w", err)
	}
	var ps []Partial
	for _, e := range entries {
		h, ok := strings.CutSuffix(e.Name(), partSuffix)
		fi, err := e.Info()
		if !ok || err != nil {
			continue
		}
		s.mu.Lock()
		active := s.reserved[h] != nil
		s.mu.Unlock()
		ps = append(ps, Partial{Digest: digestAlgo + h, Size: fi.Size(), Length: s.partLength(h),
			Modified: fi.ModTime(), Expires: fi.ModTime().Add(s.partMaxAge()), Active: active})
	}
	slices.SortFunc(ps, func(a, b Partial) int {
		return cmp.Or(a.Modified.Compare(b.Modified), strings.Compare(a.Digest, b.Digest))
	})
	return ps, nil
}

// ExpireParts drops the partial uploads not written to for PartMaxAge
// (but those in flight) and returns their digests.
func (s *Store) ExpireParts() (dropped []string) {
	entries, _ := os.ReadDir(s.path(uploadsDir))
	for _, e := range entries {
		h, ok := strings.CutSuffix(e.Name(), partSuffix)
		fi, err := e.Info()
		if !ok || err != nil || s.now().Sub(fi.ModTime()) < s.partMaxAge() {
			continue
		}
		release, err := s.acquire(h)
		if err != nil {
			continue // in flight, or being removed
		}
		s.log.Info("dropping an abandoned upload", "part", e.Name(), "bytes", fi.Size(), "modified", fi.ModTime())
		s.removePart(h)
		release()
		dropped = append(dropped, digestAlgo+h)
	}
	return dropped
}

// removePart removes the part of h and its length; it reports whether
// there was a part.
func (s *Store) removePart(h string) bool {
	os.Remove(s.path(uploadsDir, h+lenSuffix))
	return os.Remove(s.partPath(h)) == nil
}

// writeLength records the declared length of the upload of h.
func (s *Store) writeLength(h string, total int64) error {
	return os.WriteFile(s.path(uploadsDir, h+lenSuffix), strconv.AppendInt(nil, total, 10), 0o600)
}

// partLength is the declared length of the upload of h; 0 when unknown.
func (s *Store) partLength(h string) int64 {
	b, err := os.ReadFile(s.path(uploadsDir, h+lenSuffix))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(string(b), 10, 64)
	return n
}
