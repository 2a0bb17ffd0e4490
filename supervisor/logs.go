package supervisor

import (
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
	w.write(appendLine(nil, appendPrefix(nil, t, stream), text))
}

// appendPrefix appends a line's prefix: "RFC3339NANO STREAM ".
func appendPrefix(b []byte, t time.Time, stream string) []byte {
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(append(append(b, ' '), stream...), ' ')
}

// appendLine appends prefix, text and a newline.
func appendLine(b, prefix, text []byte) []byte {
	return append(append(append(b, prefix...), text...), '\n')
}

// write appends whole lines, rotating between two lines wherever the
// next would take current past MaxSize. On a failure the lines not
// written are dropped and counted, never retried, so a full disk
// cannot stall the workload.
func (w *logWriter) write(b []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil && !w.closed {
		w.open() // closed between runs; on failure the lines are dropped
	}
	for len(b) > 0 {
		n := len(b)
		if room := w.lim.MaxSize - w.size; int64(n) > room {
			n = bytes.LastIndexByte(b[:max(0, room)], '\n') + 1 // the lines that fit; 0 if none
		}
		if n == 0 && !w.closed && w.size > 0 {
			if w.rotate(); w.f != nil {
				continue
			}
		}
		if n == 0 { // one line longer than MaxSize, into an empty file
			n = bytes.IndexByte(b, '\n') + 1
		}
		if w.f == nil {
			w.dropped.Add(uint64(bytes.Count(b, []byte{'\n'})))
			return
		}
		m, err := w.f.Write(b[:n])
		w.size += int64(m)
		if err != nil {
			w.dropped.Add(uint64(bytes.Count(b[m:], []byte{'\n'})))
			return
		}
		b = b[n:]
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
//
// A flood of output is the cost to keep down (issue 10: 10 GB of
// stdout cost PID 1 75% of a core): each read of the pipe takes what
// is there (up to 64 KiB), and its lines share one timestamp, one
// buffer and one write.
func copyLines(r io.ReadCloser, stream string, w *logWriter) {
	c := lineCopier{stream: stream, w: w}
	c.copy(r)
}

// copy is copyLines with c's state. It returns true at the stream's
// end, having closed r; false when a read deadline passed (a freeze,
// handover.go), with r open, every whole line read written, and the
// rest in c.part: the next copier of r carries on from c.
func (c *lineCopier) copy(r io.ReadCloser) bool {
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			c.chunk(time.Now(), buf[:n])
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return false
		}
		if err != nil {
			c.flush(time.Now())
			r.Close()
			return true // io.EOF, or the pipe broke
		}
	}
}

// copier is a goroutine running lineCopier.copy on one log stream.
type copier struct {
	r    *os.File
	lc   lineCopier
	done chan struct{} // closed when copy has returned
	eof  bool          // copy's result; read after done
}

// pause stops the copier at a line boundary (a read deadline now) and
// reports whether it is paused with r open, rather than ended at EOF.
// Its state (cp.lc) is then the loop's until it is resumed.
func (cp *copier) pause() bool {
	cp.r.SetReadDeadline(time.Now()) // an error: closed at EOF already
	<-cp.done
	if cp.eof {
		return false
	}
	cp.r.SetReadDeadline(time.Time{})
	return true
}

// lineCopier cuts what a stream yields into log lines.
type lineCopier struct {
	stream string
	w      *logWriter
	part   []byte // the start of a line whose newline has not come
	split  bool   // the last line written was cut at MaxLine, not ended
	prefix []byte
	out    []byte
}

// chunk writes the lines that data, read at t, ends.
func (c *lineCopier) chunk(t time.Time, data []byte) {
	c.prefix = appendPrefix(c.prefix[:0], t, c.stream)
	c.out = c.out[:0]
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			c.part = append(c.part, data...)
			for len(c.part) >= MaxLine {
				c.out = appendLine(c.out, c.prefix, c.part[:MaxLine])
				c.part = append(c.part[:0], c.part[MaxLine:]...)
				c.split = true
			}
			break
		}
		line := data[:i]
		data = data[i+1:]
		if len(c.part) > 0 {
			c.part = append(c.part, line...)
			line = c.part
		}
		for len(line) > MaxLine {
			c.out = appendLine(c.out, c.prefix, line[:MaxLine])
			line = line[MaxLine:]
			c.split = true
		}
		if len(line) > 0 || !c.split {
			c.out = appendLine(c.out, c.prefix, line)
		}
		c.part, c.split = c.part[:0], false
	}
	if len(c.out) > 0 {
		c.w.write(c.out)
	}
}

// flush writes an unfinished last line.
func (c *lineCopier) flush(t time.Time) {
	if len(c.part) > 0 {
		c.w.write(appendLine(nil, appendPrefix(nil, t, c.stream), c.part))
		c.part = c.part[:0]
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
