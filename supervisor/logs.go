package supervisor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A container's logs live in its LogDir:
//
//	current     the file being written
//	current.1   the one before, ... up to current.N (N = Files-1)
//
// Each line is "RFC3339NANO STREAM TEXT": the time PID 1 read it, then
// "stdout" or "stderr". A line longer than MaxLine is split into several.
// When writing the next line would take current past MaxSize, the files
// shift by one (current.N-1 → current.N, ..., current → current.1) and
// current starts empty, so the whole directory stays under
// MaxSize × Files plus one line.
const (
	// LogFile is the name of the file being written.
	LogFile = "current"
	// MaxLine is the longest line kept whole.
	MaxLine = 16 << 10
)

// LogLimits bound a container's logs. Zero fields are the defaults.
type LogLimits struct {
	// MaxSize is the size at which current rotates; 0 means 1 MiB, and
	// less than 64 KiB is raised to 64 KiB.
	MaxSize int64
	// Files is how many files to keep, current included; 0 means 5.
	Files int
}

func (l LogLimits) withDefaults() LogLimits {
	if l.MaxSize == 0 {
		l.MaxSize = 1 << 20
	}
	l.MaxSize = max(l.MaxSize, 64<<10)
	if l.Files <= 0 {
		l.Files = 5
	}
	return l
}

// logWriter appends timestamped lines to a container's current file and
// rotates it. The stdout and stderr copiers of every run share it.
type logWriter struct {
	dir     string
	lim     LogLimits
	dropped atomic.Uint64

	mu     sync.Mutex
	f      *os.File // nil when no copier runs, after close, or after a failed rotation
	size   int64
	closed bool
	users  int // copiers running
}

// acquire registers n copiers. The file is open while any runs, and
// closed when the last one ends, so that a stopped container holds
// nothing open on the data disk (which must unmount at shutdown).
func (w *logWriter) acquire(n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.users += n
	if w.f == nil && !w.closed {
		w.open() // on failure, lines are dropped and counted
	}
}

// release unregisters a copier; the last one closes the file.
func (w *logWriter) release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.users--; w.users == 0 && w.f != nil {
		w.f.Close()
		w.f = nil
	}
}

func openLog(dir string, lim LogLimits) (*logWriter, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("supervisor: logs: %w", err)
	}
	w := &logWriter{dir: dir, lim: lim.withDefaults()}
	if err := w.open(); err != nil {
		return nil, fmt.Errorf("supervisor: logs: %w", err)
	}
	w.f.Close() // acquire opens it again for each run
	w.f = nil
	return w, nil
}

func (w *logWriter) open() error {
	f, err := os.OpenFile(filepath.Join(w.dir, LogFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w.f, w.size = f, fi.Size()
	return nil
}

// writeLine writes one line; on any failure the line is dropped and
// counted, never retried, so a full disk cannot stall the workload.
func (w *logWriter) writeLine(t time.Time, stream string, text []byte) {
	b := make([]byte, 0, len(text)+48)
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(append(append(append(b, ' '), stream...), ' '), text...)
	b = append(b, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil && !w.closed {
		w.open() // closed between runs; on failure the line is dropped
	}
	if !w.closed && w.size > 0 && w.size+int64(len(b)) > w.lim.MaxSize {
		w.rotate()
	}
	if w.f == nil {
		w.dropped.Add(1)
		return
	}
	n, err := w.f.Write(b)
	w.size += int64(n)
	if err != nil {
		w.dropped.Add(1)
	}
}

// rotate shifts the files by one and opens a new current. It holds mu.
func (w *logWriter) rotate() {
	w.f.Close()
	w.f = nil
	name := func(i int) string {
		if i == 0 {
			return filepath.Join(w.dir, LogFile)
		}
		return filepath.Join(w.dir, LogFile+"."+strconv.Itoa(i))
	}
	for i := w.lim.Files - 1; i > 0; i-- {
		os.Rename(name(i-1), name(i)) // a missing older file is fine
	}
	if w.lim.Files == 1 {
		os.Remove(name(0))
	}
	if err := w.open(); err != nil {
		w.f = nil // writes drop until the next rotation attempt
		w.size = w.lim.MaxSize
	}
}

func (w *logWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != nil {
		w.f.Close()
	}
	w.f, w.closed = nil, true
}

// copyLines reads r until EOF and writes each line to w under stream's
// name, splitting lines longer than MaxLine. It closes r.
func copyLines(r io.ReadCloser, stream string, w *logWriter) {
	defer r.Close()
	br := bufio.NewReaderSize(r, MaxLine)
	split := false // the last chunk was a split, not a whole line
	for {
		chunk, err := br.ReadSlice('\n')
		whole := err == nil
		text := bytes.TrimSuffix(chunk, []byte("\n"))
		if len(text) > 0 || (whole && !split) {
			w.writeLine(time.Now(), stream, text)
		}
		split = errors.Is(err, bufio.ErrBufferFull)
		if err != nil && !split {
			return // io.EOF, or the pipe broke
		}
	}
}

// ReadLogs returns the last tail lines of the logs in dir, oldest first;
// tail <= 0 returns them all. A directory without logs has none.
func ReadLogs(dir string, tail int) ([]string, error) {
	var lines []string
	for _, name := range logFiles(dir) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // rotated away since logFiles listed it
		}
		if err != nil {
			return nil, fmt.Errorf("supervisor: logs: %w", err)
		}
		lines = append(lines, splitLines(b)...)
	}
	if tail > 0 && len(lines) > tail {
		lines = lines[len(lines)-tail:]
	}
	return lines, nil
}

// logFiles lists dir's log files oldest first: current.N ... current.1,
// current.
func logFiles(dir string) []string {
	ents, _ := os.ReadDir(dir)
	type rotated struct {
		n    int
		name string
	}
	var rs []rotated
	for _, e := range ents {
		if s, ok := strings.CutPrefix(e.Name(), LogFile+"."); ok {
			if n, err := strconv.Atoi(s); err == nil && n > 0 {
				rs = append(rs, rotated{n, e.Name()})
			}
		}
	}
	slices.SortFunc(rs, func(a, b rotated) int { return b.n - a.n })
	names := make([]string, 0, len(rs)+1)
	for _, r := range rs {
		names = append(names, r.name)
	}
	return append(names, LogFile)
}

func splitLines(b []byte) []string {
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
