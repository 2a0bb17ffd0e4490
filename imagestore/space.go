package imagestore

import (
	"fmt"
	"slices"
	"strings"
)

// The data disk's space. Uploads do not take what they have not been
// promised: an upload reserves the bytes it still has to write (its
// declared length less what the node kept) when it starts, under the
// store's lock, and the check that admits it counts the reservations of
// every other upload in flight, so concurrent uploads cannot together
// promise more than the disk has. The reservation shrinks as the bytes
// arrive (the disk's free space shrinks with it) and ends with the
// upload. Below all of it lies the floor (reserve: 32 MiB and 5% of the
// free space) that uploads and images never take, for state.db, the
// logs and the next boot; state.db also keeps StateReserve bytes
// allocated past its end (Preallocate), which nothing else can take.

// Disk is the space of the filesystem that holds the data root.
type Disk struct {
	// Total is the filesystem's size in bytes.
	Total int64
	// Free is what an unprivileged writer may still use, in bytes
	// (statfs f_bavail): containers, and the floor uploads keep.
	Free int64
	// Files and FilesFree count inodes; both are 0 on a filesystem
	// without a fixed number (btrfs, some tmpfs).
	Files, FilesFree uint64
	// Reserved is what the uploads in flight have been promised and
	// not yet written, in bytes.
	Reserved int64
	// Floor is what uploads and images leave free now, in bytes.
	Floor int64
}

// Disk says how much space the data disk has, and what uploads in
// flight hold of it.
func (s *Store) Disk() (Disk, error) {
	d, err := s.statDisk()
	if err != nil {
		return Disk{}, fmt.Errorf("imagestore: %w", err)
	}
	s.mu.Lock()
	d.Reserved = s.pendingLocked("")
	s.mu.Unlock()
	d.Floor = reserve(d.Free)
	return d, nil
}

// reservation is one upload in flight: it was promised want bytes,
// and has written written of them.
type reservation struct {
	want    int64
	written int64 // guarded by Store.mu
}

// pendingLocked is what the uploads in flight, but the one of except,
// have been promised and not yet written. It holds mu.
func (s *Store) pendingLocked(except string) int64 {
	var n int64
	for h, r := range s.reserved {
		if h != except {
			n += max(0, r.want-r.written)
		}
	}
	return n
}

// reserve admits an upload of digest (hex h) with total bytes, of which
// kept are on disk: it fails with ErrTooLarge when the upload is over
// the limits or when what it has still to write does not fit beside
// what the other uploads in flight were promised; else it records the
// promise. The returned func writes down progress; done ends the
// reservation.
func (s *Store) reserve(digest, h string, total, kept int64) (wrote func(int64), done func(), err error) {
	free, err := s.free()
	if err != nil {
		return nil, nil, fmt.Errorf("imagestore: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if lim := s.limits(free + kept); total > lim.MaxBytes {
		return nil, nil, errorf(ErrTooLarge, "imagestore: upload of %s: %d bytes is over the limit of %d bytes (the data disk has %d bytes free, of which %d are kept in reserve for state and logs)",
			digest, total, lim.MaxBytes, free+kept, reserve(free+kept))
	}
	pending := s.pendingLocked(h)
	if avail := free - pending - reserve(free); total-kept > avail {
		return nil, nil, errorf(ErrTooLarge, "imagestore: upload of %s: %d more bytes do not fit: the data disk has %d bytes free, %d of them promised to %s in flight and %d kept in reserve for state and logs; try again when they are done, or free space (cloud rmi, cloud images --partial)",
			digest, total-kept, free, pending, s.inFlightLocked(h), reserve(free))
	}
	r := &reservation{want: total - kept}
	s.reserved[h] = r
	wrote = func(n int64) {
		s.mu.Lock()
		r.written += n
		s.mu.Unlock()
	}
	done = func() {
		s.mu.Lock()
		if s.reserved[h] == r {
			delete(s.reserved, h)
		}
		s.mu.Unlock()
	}
	return wrote, done, nil
}

// inFlightLocked names the other uploads in flight. It holds mu.
func (s *Store) inFlightLocked(except string) string {
	var ds []string
	for h := range s.reserved {
		if h != except {
			ds = append(ds, digestAlgo+h[:12])
		}
	}
	slices.Sort(ds)
	switch len(ds) {
	case 0:
		return "no other upload"
	case 1:
		return "1 other upload (" + ds[0] + ")"
	}
	return fmt.Sprintf("%d other uploads (%s)", len(ds), strings.Join(ds, ", "))
}

// unpackFree is the free space an unpacking of h may count on: the
// disk's, less what the other uploads in flight were promised.
func (s *Store) unpackFree(h string) (int64, error) {
	free, err := s.free()
	if err != nil {
		return 0, fmt.Errorf("imagestore: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(0, free-s.pendingLocked(h)), nil
}
