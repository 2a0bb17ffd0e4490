package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"allium/api"
	"allium/internal/durable"
	"allium/rootfs"
)

// Updates in place, the first part: receiving a new init and checking
// it (initcheck_linux.go). Switching to it: reexec_linux.go.
//
// The data root's inits/ (0700) holds:
//
//	HEX.part   an upload in progress, kept to resume; it never runs
//	           but to be checked
//	HEX.json   the InitInfo of the staged init, written before...
//	HEX        ...the init itself appears, by one rename, once its
//	           digest matched and the checks passed
//
// At most one init is staged: staging one removes the others. A refused
// init is removed, and the node goes on as it was.

// initStore is the node's inits/. Its zero value is not usable.
type initStore struct {
	dir   string
	check func(ctx context.Context, path string) (api.InitVersion, error)
	// room says how many more bytes an upload may write.
	room   func() (int64, error)
	record func(api.Event)
	log    *slog.Logger

	mu      sync.Mutex
	busy    map[string]bool // digests with an upload in flight
	refused string          // why the last refused init was refused
}

// openInits makes dir (0700) and drops what a crash left half-written.
func openInits(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
	for _, p := range tmps {
		os.Remove(p)
	}
	return nil
}

func (s *initStore) path(h, suffix string) string { return filepath.Join(s.dir, h+suffix) }

// Init returns the staged init of digest.
func (s *initStore) Init(digest string) (api.InitInfo, error) {
	h := strings.TrimPrefix(digest, "sha256:")
	b, err := os.ReadFile(s.path(h, ".json"))
	if err == nil {
		_, err = os.Stat(s.path(h, ""))
	}
	if errors.Is(err, os.ErrNotExist) {
		return api.InitInfo{}, api.NotFound("init %s is not staged on this node", digest)
	}
	if err != nil {
		return api.InitInfo{}, err
	}
	var in api.InitInfo
	if err := json.Unmarshal(b, &in); err != nil {
		return api.InitInfo{}, fmt.Errorf("init: %s: %w", s.path(h, ".json"), err)
	}
	return in, nil
}

// Staged is the init staged last, or nil.
func (s *initStore) Staged() *api.InitInfo {
	infos, _ := filepath.Glob(filepath.Join(s.dir, "*.json"))
	for _, p := range infos {
		if in, err := s.Init("sha256:" + strings.TrimSuffix(filepath.Base(p), ".json")); err == nil {
			return &in
		}
	}
	return nil
}

// Offset is how many bytes of an upload of digest are kept.
func (s *initStore) Offset(digest string) int64 {
	fi, err := os.Stat(s.path(strings.TrimPrefix(digest, "sha256:"), ".part"))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Put is api.Updater.PutInit.
func (s *initStore) Put(ctx context.Context, digest string, offset, total int64, body io.Reader) (api.InitInfo, error) {
	if total > api.MaxInitSize {
		return api.InitInfo{}, api.TooLarge("init of %d bytes: an init is at most %d bytes", total, api.MaxInitSize)
	}
	release, err := s.acquire(digest)
	if err != nil {
		return api.InitInfo{}, err
	}
	defer release()
	if in, err := s.Init(digest); err == nil {
		return in, nil
	}
	kept, err := s.append(digest, offset, total, body)
	if err != nil {
		return api.InitInfo{}, err
	}
	if kept < total {
		return api.InitInfo{}, fmt.Errorf("upload of init %s stopped at %d of %d bytes", digest, kept, total)
	}
	in, err := s.stage(context.WithoutCancel(ctx), digest, total)
	if err != nil {
		s.mu.Lock()
		s.refused = err.Error()
		s.mu.Unlock()
		s.record(api.Event{Type: api.EventUpdate, Message: err.Error()})
		return api.InitInfo{}, err
	}
	s.record(api.Event{Type: api.EventUpdate, Message: fmt.Sprintf("init %s (%s, state schema %d) accepted and staged",
		in.Version, digest, in.StateSchema)})
	return in, nil
}

func (s *initStore) acquire(digest string) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy == nil {
		s.busy = map[string]bool{}
	}
	if s.busy[digest] {
		return nil, api.UploadBusy("init %s: another upload of it is under way", digest)
	}
	s.busy[digest] = true
	return func() {
		s.mu.Lock()
		delete(s.busy, digest)
		s.mu.Unlock()
	}, nil
}

// append writes body to the part, from offset, and returns how many
// bytes it holds. A full disk drops the part.
func (s *initStore) append(digest string, offset, total int64, body io.Reader) (int64, error) {
	part := s.path(strings.TrimPrefix(digest, "sha256:"), ".part")
	kept := s.Offset(digest)
	if kept > total { // the client changed its mind about the size
		os.Remove(part)
		kept = 0
	}
	if offset != kept {
		return kept, api.OffsetMismatch(digest, kept)
	}
	if kept == total {
		return kept, nil
	}
	room, err := s.room()
	if err != nil {
		return kept, err
	}
	if total-kept > room {
		return kept, api.TooLarge("init %s: %d more bytes do not fit: the data disk can take %d; free space (cloud images, cloud rmi)", digest, total-kept, max(room, 0))
	}
	n, err := writeSynced(part, os.O_APPEND, 0o600, io.LimitReader(body, total-kept))
	if errors.Is(err, syscall.ENOSPC) {
		os.Remove(part) // it cannot finish; its bytes are better free
		return 0, api.NoSpace("init %s: the data disk is full (%v); the upload was dropped: free space (cloud images, cloud rmi) and send it again", digest, err)
	}
	return kept + n, err
}

// stage checks the complete part and makes it the staged init; any
// failure removes it.
func (s *initStore) stage(ctx context.Context, digest string, total int64) (api.InitInfo, error) {
	h := strings.TrimPrefix(digest, "sha256:")
	part := s.path(h, ".part")
	in, err := s.verify(ctx, digest, part)
	if err != nil {
		os.Remove(part)
		return api.InitInfo{}, err
	}
	in.Size = total
	if err := s.commit(h, part, in); err != nil {
		os.Remove(part)
		os.Remove(s.path(h, ".json"))
		return api.InitInfo{}, fmt.Errorf("init %s: %w", digest, err)
	}
	s.dropOthers(h)
	return in, nil
}

// verify checks the part's digest and the init in it.
func (s *initStore) verify(ctx context.Context, digest, part string) (api.InitInfo, error) {
	got, err := fileDigest(part)
	if err != nil {
		return api.InitInfo{}, err
	}
	if got != digest {
		return api.InitInfo{}, api.BadRequest("init %s: the file sent has the digest %s; nothing was kept", digest, got)
	}
	if err := os.Chmod(part, 0o700); err != nil {
		return api.InitInfo{}, err
	}
	v, err := s.check(ctx, part)
	if err != nil {
		return api.InitInfo{}, api.BadRequest("init %s refused: %v; nothing changed", digest, err)
	}
	return api.InitInfo{Digest: digest, InitVersion: v}, nil
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(sum.Sum(nil)), nil
}

// commit writes HEX.json, then renames the part to HEX, each synced.
func (s *initStore) commit(h, part string, in api.InitInfo) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	if _, err := writeSynced(s.path(h, ".json.tmp"), os.O_TRUNC, 0o600, bytes.NewReader(b)); err != nil {
		return err
	}
	if err := os.Rename(s.path(h, ".json.tmp"), s.path(h, ".json")); err != nil {
		return err
	}
	if err := os.Rename(part, s.path(h, "")); err != nil {
		return err
	}
	return durable.SyncDir(s.dir)
}

// dropOthers removes every init and partial upload but h's: one init
// is staged at a time.
func (s *initStore) dropOthers(h string) {
	entries, _ := os.ReadDir(s.dir)
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, h) || s.uploading(name) {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, name)); err != nil {
			s.log.Warn("init: removing an older init", "file", name, "err", err)
		}
	}
}

// uploading reports whether the file name belongs to an upload in
// flight.
func (s *initStore) uploading(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for d := range s.busy {
		if strings.HasPrefix(name, strings.TrimPrefix(d, "sha256:")) {
			return true
		}
	}
	return false
}

// writeSynced writes r to the file at path, opened (or created with
// perm) for writing with flag (os.O_APPEND, os.O_TRUNC), and syncs and
// closes it; it returns how much it wrote.
func writeSynced(path string, flag int, perm os.FileMode, r io.Reader) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|flag, perm)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// The node's side: api.Updater.

// inits returns the node's init store, made on first use.
func (n *node) inits() (*initStore, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.initStore != nil {
		return n.initStore, nil
	}
	dir := filepath.Join(n.root, rootfs.DataDir, "inits")
	if err := openInits(dir); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	want, err := elfOf("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("init: reading this init's ELF header: %w", err)
	}
	c := initChecker{Starter: n.reaper, Want: want, Self: selfVersion(), Log: n.log}
	n.initStore = &initStore{dir: dir, check: c.check, room: func() (int64, error) { return n.initRoom(dir) },
		record: n.recordEvent, log: n.log}
	return n.initStore, nil
}

// initRoom is what an init upload may write: the data disk's free
// space less what image uploads were promised and the floor they leave.
func (n *node) initRoom(dir string) (int64, error) {
	if n.apps != nil {
		if d := n.apps.Disk(); d != nil {
			return d.Free - d.Uploading - d.Floor, nil
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	return int64(st.Bavail)*int64(st.Bsize) - 32<<20, nil
}

// recordEvent records ev in state.db's event log, or, without one,
// only in the node's log.
func (n *node) recordEvent(ev api.Event) {
	if n.apps != nil {
		n.apps.Record(ev)
		return
	}
	n.log.Info("event", "type", ev.Type, "message", ev.Message)
}

func (n *node) Init(ctx context.Context, digest string) (api.InitInfo, error) {
	s, err := n.inits()
	if err != nil {
		return api.InitInfo{}, err
	}
	return s.Init(digest)
}

func (n *node) InitOffset(ctx context.Context, digest string) (int64, error) {
	s, err := n.inits()
	if err != nil {
		return 0, err
	}
	return s.Offset(digest), nil
}

func (n *node) PutInit(ctx context.Context, digest string, offset, total int64, body io.Reader) (api.InitInfo, error) {
	s, err := n.inits()
	if err != nil {
		return api.InitInfo{}, err
	}
	return s.Put(ctx, digest, offset, total, body)
}

// updateView is Node.Update.
func (n *node) updateView() *api.Update {
	u := &api.Update{StateSchema: selfVersion().StateSchema, Handover: handoverVersion, Running: version}
	n.mu.Lock()
	s := n.initStore
	u.Previous, u.Last = n.previous, n.lastSwitch
	n.mu.Unlock()
	if s == nil { // nothing uploaded since boot: read, without making inits/
		s = &initStore{dir: filepath.Join(n.root, rootfs.DataDir, "inits")}
	}
	u.Staged = s.Staged()
	s.mu.Lock()
	u.Refused = s.refused
	s.mu.Unlock()
	return u
}
