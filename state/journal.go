package state

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"allium/internal/durable"

	bolt "go.etcd.io/bbolt"
)

// The key journal, beside state.db (state.db.keys), makes authorization
// monotonic through any recovery of state.db: every authorization and
// every revocation is appended to it and fsync'd before the API answers,
// and it is replayed over whatever state.db opens (the live file, a
// copy, or a fresh one). A revocation is written before the key leaves
// state.db, and a key the journal last saw revoked is refused even if
// state.db still holds it. One line a record:
//
//	crc32c-of-json(8 hex) SP {"seq":N,"op":"add"|"revoke","key":...,"name":...} LF
//
// A line that fails its checksum is skipped and counted; a last line
// without its LF (a write cut by a power loss, never acknowledged) is
// cut off.
type journal struct {
	path string

	mu   sync.Mutex
	f    *os.File
	seq  uint64
	last map[string]journalRecord // the latest record of each public key
	// skipped counts damaged lines found at load; torn is a cut-off
	// last line.
	skipped int
	torn    bool
	// existed: the file was there before Open (the node booted before).
	existed bool
}

// Operations of journalRecord.Op.
const (
	opAdd    = "add"
	opRevoke = "revoke"
)

type journalRecord struct {
	Seq    uint64    `json:"seq"`
	Op     string    `json:"op"`
	Public []byte    `json:"key"`
	Onion  []byte    `json:"onion,omitempty"`
	Name   string    `json:"name,omitempty"`
	Role   string    `json:"role,omitempty"`
	Time   time.Time `json:"time"`
}

func (r journalRecord) key() Key {
	return Key{Public: r.Public, Onion: r.Onion, Name: r.Name, Role: r.Role, Added: r.Time}
}

// openJournal opens (or creates) the journal at path and loads it.
func openJournal(path string) (*journal, error) {
	j := &journal{path: path, last: map[string]journalRecord{}}
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("state: key journal: %w", err)
	}
	j.existed = err == nil
	whole := j.load(data)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state: key journal: %w", err)
	}
	if whole < len(data) {
		// Cut the torn line, so the next record starts on a line of its own.
		if err := f.Truncate(int64(whole)); err != nil {
			f.Close()
			return nil, fmt.Errorf("state: key journal: cut a torn line: %w", err)
		}
	}
	if _, err := f.Seek(int64(whole), 0); err != nil {
		f.Close()
		return nil, err
	}
	if data == nil {
		syncDir(filepath.Dir(path))
	}
	j.f = f
	return j, nil
}

// load applies the records of data in order and returns the length of
// its whole lines.
func (j *journal) load(data []byte) int {
	whole := bytes.LastIndexByte(data, '\n') + 1
	j.torn = whole < len(data)
	sc := bufio.NewScanner(bytes.NewReader(data[:whole]))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		r, ok := parseRecord(sc.Bytes())
		if !ok {
			j.skipped++
			continue
		}
		j.apply(r)
	}
	return whole
}

func parseRecord(line []byte) (journalRecord, bool) {
	var r journalRecord
	sumHex, body, ok := bytes.Cut(line, []byte{' '})
	if !ok || len(sumHex) != 8 {
		return r, false
	}
	want, err := strconv.ParseUint(string(sumHex), 16, 32)
	if err != nil || crc32.Checksum(body, castagnoli) != uint32(want) {
		return r, false
	}
	if json.Unmarshal(body, &r) != nil || len(r.Public) == 0 || (r.Op != opAdd && r.Op != opRevoke) {
		return r, false
	}
	return r, true
}

func (j *journal) apply(r journalRecord) {
	j.last[string(r.Public)] = r
	j.seq = max(j.seq, r.Seq)
}

// empty reports whether the journal holds no record.
func (j *journal) empty() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.last) == 0
}

// append writes op of k, fsync'd, unless the journal's latest record
// of k already says the same.
func (j *journal) append(op string, k Key) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if old, ok := j.last[string(k.Public)]; ok && old.Op == op && (op == opRevoke || old.key().same(k)) {
		return nil
	}
	r := journalRecord{Seq: j.seq + 1, Op: op, Public: k.Public, Onion: k.Onion, Name: k.Name, Role: k.Role, Time: k.Added}
	if op == opRevoke || r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	line := fmt.Appendf(nil, "%08x %s\n", crc32.Checksum(body, castagnoli), body)
	if _, err := j.f.Write(line); err != nil {
		return fmt.Errorf("state: key journal: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("state: key journal: %w", err)
	}
	j.apply(r)
	return nil
}

// revoked reports whether the journal last saw pub revoked.
func (j *journal) revoked(pub []byte) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	r, ok := j.last[string(pub)]
	return ok && r.Op == opRevoke
}

// KeyReplay is what replaying the key journal changed in state.db.
type KeyReplay struct {
	// Revoked and Restored name the keys removed and put back.
	Revoked, Restored []string
	// Skipped counts damaged journal lines; Torn is a cut-off last line.
	Skipped int
	Torn    bool
	// Clashes name keys the journal holds that clash with another
	// stored key (name or onion key), left out.
	Clashes []string
}

// replay makes the keys bucket agree with the journal: revocations
// first (they win), then the keys it last saw added that are missing.
func (j *journal) replay(tx *bolt.Tx) (KeyReplay, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := KeyReplay{Skipped: j.skipped, Torn: j.torn}
	b := tx.Bucket(bucketKeys)
	for _, r := range j.sorted() {
		if r.Op != opRevoke || b.Get(r.Public) == nil {
			continue
		}
		if err := b.Delete(r.Public); err != nil {
			return out, err
		}
		out.Revoked = append(out.Revoked, r.Name)
	}
	for _, r := range j.sorted() {
		if r.Op != opAdd || b.Get(r.Public) != nil {
			continue
		}
		k := r.key()
		if err := checkClash(b, k); err != nil {
			out.Clashes = append(out.Clashes, r.Name)
			continue
		}
		if err := putKey(b, k); err != nil {
			return out, err
		}
		out.Restored = append(out.Restored, r.Name)
	}
	return out, nil
}

// sorted is the latest record of each key, in journal order.
func (j *journal) sorted() []journalRecord {
	out := make([]journalRecord, 0, len(j.last))
	for _, r := range j.last {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b journalRecord) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.f.Close()
}

// syncDir fsyncs a directory, so that a file created or renamed in it
// survives a power loss. Errors are ignored: some filesystems refuse
// fsync on a directory, and the data itself is already synced.
func syncDir(dir string) { durable.SyncDir(dir) }
