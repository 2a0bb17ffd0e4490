package imagestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"allium/manifest"
)

// Store is the node's images, content-addressed by the sha256 of the
// archive as pushed, in a data root:
//
//	ROOT/uploads/HEX.part       partial archives: kept across interruptions and
//	                            reboots so that the client resumes; dropped after
//	                            PartMaxAge untouched (parts.go)
//	ROOT/uploads/HEX.length     the archive's declared length, beside its part
//	ROOT/staging/HEX.RANDOM/    unpacking in progress; emptied by Open
//	ROOT/images/HEX/            unpacked images (read-only templates for containers)
//	    manifest.json
//	    rootfs/
//	    archive.info            {"size": archive bytes, "created": when unpacked}
//
// An image appears in images/ by one rename from staging/, after a
// syncfs: a crash leaves either the whole image or none of it. The
// store knows nothing of containers: GC asks which images are in use.
type Store struct {
	// Limits gives the limits for an upload and for unpacking it from
	// the bytes free on the data disk; nil means DefaultLimits. Set it
	// before the first Write.
	Limits func(freeDisk int64) Limits
	// PartMaxAge is how long a partial upload is kept without a byte
	// written to it; 0 means DefaultPartMaxAge.
	PartMaxAge time.Duration

	root string
	u    Unpacker
	log  *slog.Logger
	free func() (int64, error) // bytes free on the data disk
	now  func() time.Time

	mu       sync.Mutex
	busy     map[string]bool         // hex digests being uploaded or removed
	reserved map[string]*reservation // hex digests of uploads in flight (space.go)
}

// Unpacker unpacks the archive at archivePath into stagingDir, an
// empty directory, within lim.
type Unpacker interface {
	Unpack(ctx context.Context, archivePath, stagingDir string, lim Limits) (*manifest.Manifest, error)
}

// InProcess unpacks in the calling process: for tests and tools. PID 1
// uses Helper.
type InProcess struct{}

func (InProcess) Unpack(ctx context.Context, archivePath, stagingDir string, lim Limits) (*manifest.Manifest, error) {
	f, err := os.Open(archivePath)
	if err != nil {
		return nil, fmt.Errorf("imagestore: %w", err)
	}
	defer f.Close()
	m, _, err := Unpack(ctx, f, stagingDir, lim)
	return m, err
}

// Info describes an image on the node.
type Info struct {
	Digest string
	// Name is the manifest's name.
	Name string
	// Size is the archive's size in bytes.
	Size int64
	// Created is when the node finished unpacking it.
	Created time.Time
}

// archiveInfo is images/HEX/archive.info.
type archiveInfo struct {
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
}

const (
	uploadsDir  = "uploads"
	imagesDir   = "images"
	stagingDir  = "staging"
	infoFile    = "archive.info"
	digestAlgo  = "sha256:"
	partSuffix  = ".part"
	lenSuffix   = ".length"
	removedPart = ".rm."
)

// Open opens the store in root, making its directories. It removes
// whatever is in staging (a crash mid-unpack) and upload parts that
// have not been written to for PartMaxAge.
func Open(root string, u Unpacker, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{root: root, u: u, log: log, now: time.Now, busy: map[string]bool{}, reserved: map[string]*reservation{}}
	s.free = func() (int64, error) { return freeBytes(root) }
	for _, d := range []string{uploadsDir, imagesDir, stagingDir} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("imagestore: %w", err)
		}
	}
	entries, err := os.ReadDir(s.path(stagingDir))
	if err != nil {
		return nil, fmt.Errorf("imagestore: %w", err)
	}
	for _, e := range entries {
		log.Info("removing an unfinished unpack", "dir", e.Name())
		if err := removeAll(s.path(stagingDir, e.Name())); err != nil {
			return nil, fmt.Errorf("imagestore: %w", err)
		}
	}
	s.ExpireParts()
	return s, nil
}

func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

func (s *Store) partPath(hex string) string  { return s.path(uploadsDir, hex+partSuffix) }
func (s *Store) imagePath(hex string) string { return s.path(imagesDir, hex) }

func (s *Store) limits(free int64) Limits {
	if s.Limits != nil {
		return s.Limits(free)
	}
	return DefaultLimits(free)
}

// digestHex checks a digest, "sha256:" and 64 lower-case hex digits,
// and returns the hex.
func digestHex(digest string) (string, error) {
	h, ok := strings.CutPrefix(digest, digestAlgo)
	if !ok || len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return "", errorf(ErrBadDigest, "imagestore: %.80q: not a digest; want %q and 64 lower-case hex digits", digest, digestAlgo)
	}
	return h, nil
}

// acquire marks a digest busy, or fails with ErrBusy.
func (s *Store) acquire(hex string) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[hex] {
		return nil, errorf(ErrBusy, "imagestore: %s%s: another upload or removal of it is under way", digestAlgo, hex)
	}
	s.busy[hex] = true
	return func() {
		s.mu.Lock()
		delete(s.busy, hex)
		s.mu.Unlock()
	}, nil
}

// Has reports whether the image is on the node.
func (s *Store) Has(digest string) bool {
	h, err := digestHex(digest)
	if err != nil {
		return false
	}
	fi, err := os.Stat(s.imagePath(h))
	return err == nil && fi.IsDir()
}

// Offset returns how many bytes of an upload of digest the node has
// kept: 0 when none.
func (s *Store) Offset(digest string) int64 {
	h, err := digestHex(digest)
	if err != nil {
		return 0
	}
	fi, err := os.Stat(s.partPath(h))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Write appends body, the archive from byte offset on, to the upload of
// digest, whose archive has total bytes, and returns how many bytes the
// node now keeps. offset must be what Offset says, else the error is an
// *OffsetError. What body yields is hashed and written as it comes, and
// synced when it ends: a body that ends early is not an error (the
// client resumes from the returned count), and a failing one returns
// what was kept with the error. Once the part holds total bytes, its
// sha256 is checked (a mismatch discards it: *DigestError), and the
// archive is unpacked through the Unpacker into staging and renamed
// into images/; any failure there removes the staging directory and
// the part, and returns the unpacker's error. An image already on the
// node returns total at once. body past total is not read.
//
// Before a byte of body is read, the upload's remaining bytes are
// reserved on the data disk (space.go), or it fails with ErrTooLarge.
// Once every byte is in, ctx no longer matters: a client whose
// connection drops right after its last byte finds the image unpacked
// when it asks again. A disk that fills up anyway (a container wrote to
// it) fails with ErrNoSpace, and the part is removed.
func (s *Store) Write(ctx context.Context, digest string, offset, total int64, body io.Reader) (int64, error) {
	h, err := digestHex(digest)
	if err != nil {
		return 0, err
	}
	if total <= 0 {
		return 0, bad("imagestore: upload of %s: length %d: want at least one byte", digest, total)
	}
	release, err := s.acquire(h)
	if err != nil {
		return 0, err
	}
	defer release()
	if s.Has(digest) {
		return total, nil
	}
	sum, kept, err := s.appendPart(ctx, digest, offset, total, body)
	if err != nil || kept < total {
		return kept, err
	}
	return total, s.install(context.WithoutCancel(ctx), digest, total, sum)
}

// appendPart writes body to the part and returns the hash of the whole
// part once it holds total bytes.
func (s *Store) appendPart(ctx context.Context, digest string, offset, total int64, body io.Reader) (hash.Hash, int64, error) {
	h := strings.TrimPrefix(digest, digestAlgo)
	name := s.partPath(h)
	kept := s.Offset(digest)
	if l := s.partLength(h); kept > total || (kept > 0 && l != 0 && l != total) { // the client changed its mind about the size
		s.removePart(h)
		kept = 0
	}
	if offset != kept {
		return nil, kept, &OffsetError{Digest: digest, Offset: offset, Kept: kept}
	}
	if kept == total {
		f, err := os.Open(name)
		if err != nil {
			return nil, kept, fmt.Errorf("imagestore: %w", err)
		}
		defer f.Close()
		sum := sha256.New()
		if _, err := io.Copy(sum, f); err != nil {
			return nil, kept, fmt.Errorf("imagestore: rehash %s: %w", name, err)
		}
		return sum, kept, nil
	}
	wrote, done, err := s.reserve(digest, h, total, kept)
	if err != nil {
		return nil, kept, err
	}
	defer done()
	sum, kept, err := s.writePart(ctx, h, kept, total, body, wrote)
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			s.removePart(h) // it cannot finish; its bytes are better free
			return nil, 0, errorf(ErrNoSpace, "imagestore: upload of %s: the data disk is full (%v); the upload was dropped: free space (cloud images, cloud rmi) and send it again", digest, err)
		}
		return nil, kept, fmt.Errorf("imagestore: upload of %s stopped at byte %d of %d: %w", digest, kept, total, err)
	}
	return sum, kept, nil
}

// writePart appends body to the part of h, which holds kept bytes, up
// to total, telling wrote what it wrote.
func (s *Store) writePart(ctx context.Context, h string, kept, total int64, body io.Reader, wrote func(int64)) (hash.Hash, int64, error) {
	name := s.partPath(h)
	if kept == 0 {
		if err := s.writeLength(h, total); err != nil {
			return nil, kept, err
		}
	}
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, kept, err
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, io.NewSectionReader(f, 0, kept)); err != nil {
		return nil, kept, fmt.Errorf("rehash %s: %w", name, err)
	}
	if _, err := f.Seek(kept, io.SeekStart); err != nil {
		return nil, kept, err
	}
	w := &syncingWriter{f: f, wrote: wrote}
	n, err := io.Copy(io.MultiWriter(w, sum), io.LimitReader(ctxReader{ctx, body}, total-kept))
	kept += n
	if serr := f.Sync(); err == nil && serr != nil {
		err = serr
	}
	return sum, kept, err
}

// syncEvery is how much of an upload may be lost to a power cut: the
// part is synced each time this much more of it has been written, so a
// resumed upload after a crash loses at most this much.
const syncEvery = 4 << 20

// syncingWriter writes to f and syncs it every syncEvery bytes.
type syncingWriter struct {
	f        *os.File
	unsynced int64
	wrote    func(int64) // told how much was written
}

func (w *syncingWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.wrote(int64(n))
	if w.unsynced += int64(n); err == nil && w.unsynced >= syncEvery {
		err = w.f.Sync()
		w.unsynced = 0
	}
	return n, err
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

// install checks the complete part's digest and unpacks it.
func (s *Store) install(ctx context.Context, digest string, total int64, sum hash.Hash) error {
	h := strings.TrimPrefix(digest, digestAlgo)
	part := s.partPath(h)
	if got := hex.EncodeToString(sum.Sum(nil)); got != h {
		s.removePart(h)
		return &DigestError{Want: digest, Got: digestAlgo + got}
	}
	start := s.now()
	staging, err := os.MkdirTemp(s.path(stagingDir), h+".")
	if err != nil {
		return fmt.Errorf("imagestore: %w", err)
	}
	m, err := s.unpack(ctx, h, part, staging)
	if err == nil {
		err = s.commit(staging, h, total)
	}
	if err != nil {
		if rerr := removeAll(staging); rerr != nil {
			s.log.Error("removing a failed unpack", "dir", staging, "err", rerr)
		}
		s.removePart(h)
		return err
	}
	s.removePart(h)
	s.log.Info("image unpacked", "digest", digest, "name", m.Name, "bytes", total, "took", s.now().Sub(start))
	return nil
}

func (s *Store) unpack(ctx context.Context, h, part, staging string) (*manifest.Manifest, error) {
	free, err := s.unpackFree(h)
	if err != nil {
		return nil, err
	}
	return s.u.Unpack(ctx, part, staging, s.limits(free))
}

// commit writes archive.info, flushes the filesystem, and renames the
// staging directory into images/.
func (s *Store) commit(staging, h string, total int64) error {
	b, err := json.Marshal(archiveInfo{Size: total, Created: s.now().UTC()})
	if err == nil {
		err = os.WriteFile(filepath.Join(staging, infoFile), b, 0o644)
	}
	if err == nil {
		err = syncFS(staging) // every file of the tree, before it becomes visible
	}
	if err == nil {
		err = os.Rename(staging, s.imagePath(h))
	}
	if err == nil {
		err = syncDir(s.path(imagesDir))
	}
	if err != nil {
		return fmt.Errorf("imagestore: %w", err)
	}
	return nil
}
