package supervisor

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"testing/synctest"
	"time"
)

// parseLine splits "RFC3339NANO STREAM TEXT".
func parseLine(t *testing.T, line string) (time.Time, string, string) {
	t.Helper()
	ts, rest, ok1 := strings.Cut(line, " ")
	stream, text, ok2 := strings.Cut(rest, " ")
	tm, err := time.Parse(time.RFC3339Nano, ts)
	if !ok1 || !ok2 || err != nil {
		t.Fatalf("log line %.80q: want \"RFC3339NANO STREAM TEXT\" (%v)", line, err)
	}
	return tm, stream, text
}

func texts(t *testing.T, lines []string) []string {
	var out []string
	for _, l := range lines {
		_, _, text := parseLine(t, l)
		out = append(out, text)
	}
	return out
}

func TestCopyLines(t *testing.T) {
	dir := t.TempDir()
	w, err := openLog(dir, LogLimits{})
	if err != nil {
		t.Fatal(err)
	}
	x, y := strings.Repeat("x", 40000), strings.Repeat("y", MaxLine)
	in := "a\n\nb\n" + x + "\n" + y + "\n" + "tail"
	before := time.Now()
	copyLines(io.NopCloser(strings.NewReader(in)), "stderr", w)
	w.close()
	lines, err := ReadLogs(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "", "b", x[:MaxLine], x[MaxLine : 2*MaxLine], x[2*MaxLine:], y, "tail"}
	if got := texts(t, lines); !reflect.DeepEqual(got, want) {
		t.Errorf("logged texts = %d lines %.200q, want %d lines %.200q", len(got), got, len(want), want)
	}
	for _, l := range lines {
		tm, stream, _ := parseLine(t, l)
		if stream != "stderr" || tm.Before(before.Truncate(time.Second)) {
			t.Errorf("line %.60q: stream %q time %v, want stderr at or after %v", l, stream, tm, before)
		}
	}
}

// copyLines batches what each read yields (issue 10: a flood of
// output cost PID 1 most of a core); lines cut across reads, one byte
// at a time, come out as from one read.
func TestCopyLinesAcrossReads(t *testing.T) {
	x := strings.Repeat("x", 40000)
	in := "a\n\nb\n" + x + "\n" + strings.Repeat("y", MaxLine) + "\n" + "tail"
	var got [2][]string
	for i, r := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in))} {
		dir := t.TempDir()
		w, err := openLog(dir, LogLimits{})
		if err != nil {
			t.Fatal(err)
		}
		copyLines(io.NopCloser(r), "stdout", w)
		w.close()
		lines, _ := ReadLogs(dir, 0)
		got[i] = texts(t, lines)
	}
	if !reflect.DeepEqual(got[0], got[1]) || len(got[0]) != 8 {
		t.Errorf("copyLines one byte at a time = %d lines %.120q, want as from one read: %d lines %.120q", len(got[1]), got[1], len(got[0]), got[0])
	}
}

func writeN(w *logWriter, from, n int) {
	for i := from; i < from+n; i++ {
		w.writeLine(time.Now(), "stdout", fmt.Appendf(nil, "line %06d %s", i, strings.Repeat(".", 60)))
	}
}

func TestRotationBoundsSize(t *testing.T) {
	dir := t.TempDir()
	lim := LogLimits{MaxSize: 64 << 10, Files: 3}
	w, err := openLog(dir, lim)
	if err != nil {
		t.Fatal(err)
	}
	writeN(w, 0, 20000) // about 2 MB
	w.close()
	ents, _ := os.ReadDir(dir)
	var names []string
	var total int64
	for _, e := range ents {
		fi, _ := e.Info()
		names = append(names, e.Name())
		total += fi.Size()
		if fi.Size() > lim.MaxSize {
			t.Errorf("%s is %d bytes, over MaxSize %d", e.Name(), fi.Size(), lim.MaxSize)
		}
	}
	if want := []string{"current", "current.1", "current.2"}; !reflect.DeepEqual(names, want) {
		t.Errorf("files = %v, want %v", names, want)
	}
	if total > 3*lim.MaxSize {
		t.Errorf("total = %d bytes, want at most %d", total, 3*lim.MaxSize)
	}
	lines, err := ReadLogs(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	// What is kept is the newest lines, in order, without a gap.
	first := 20000 - len(lines)
	for i, l := range lines {
		if _, _, text := parseLine(t, l); !strings.HasPrefix(text, fmt.Sprintf("line %06d ", first+i)) {
			t.Fatalf("line %d = %.40q, want line %06d", i, text, first+i)
		}
	}
	if w.dropped.Load() != 0 {
		t.Errorf("dropped = %d, want 0", w.dropped.Load())
	}
}

func TestReadLogsTail(t *testing.T) {
	dir := t.TempDir()
	w, _ := openLog(dir, LogLimits{MaxSize: 64 << 10, Files: 5})
	writeN(w, 0, 1000) // rotates about once
	w.close()
	if _, err := os.Stat(filepath.Join(dir, "current.1")); err != nil {
		t.Fatalf("want a rotation: %v", err)
	}
	for _, tail := range []int{1, 5, 900} {
		lines, err := ReadLogs(dir, tail)
		if err != nil || len(lines) != tail {
			t.Fatalf("ReadLogs(tail %d) = %d lines, %v", tail, len(lines), err)
		}
		for i, l := range lines {
			if _, _, text := parseLine(t, l); !strings.HasPrefix(text, fmt.Sprintf("line %06d ", 1000-tail+i)) {
				t.Errorf("ReadLogs(tail %d)[%d] = %.40q, want line %06d", tail, i, text, 1000-tail+i)
			}
		}
	}
	if lines, err := ReadLogs(filepath.Join(dir, "nope"), 10); err != nil || len(lines) != 0 {
		t.Errorf("ReadLogs(no dir) = %v, %v; want nothing", lines, err)
	}
}

// When the log directory goes away, lines are dropped and counted and
// writing never blocks or fails loudly.
func TestWriteFailureDrops(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	w, err := openLog(dir, LogLimits{MaxSize: 64 << 10, Files: 2})
	if err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(dir)
	writeN(w, 0, 2000)
	if w.dropped.Load() == 0 {
		t.Errorf("dropped = 0 after the directory vanished, want > 0")
	}
	w.close()
	n := w.dropped.Load()
	writeN(w, 0, 1)
	if w.dropped.Load() != n+1 {
		t.Errorf("a write after close: dropped %d, want %d", w.dropped.Load(), n+1)
	}
}

func receive(t *testing.T, ch <-chan string, n int) []string {
	t.Helper()
	var got []string
	for range n {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("Follow closed after %d lines, want %d", len(got), n)
			}
			got = append(got, l)
		case <-time.After(time.Minute):
			t.Fatalf("Follow sent %d lines within a minute, want %d", len(got), n)
		}
	}
	return got
}

func lineNumbers(t *testing.T, lines []string) []int {
	var ns []int
	for _, l := range lines {
		_, _, text := parseLine(t, l)
		var n int
		fmt.Sscanf(text, "line %d", &n)
		ns = append(ns, n)
	}
	return ns
}

func seq(from, n int) []int {
	var s []int
	for i := range n {
		s = append(s, from+i)
	}
	return s
}

func TestFollow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		ch := Follow(ctx, dir, 2)                  // before the container has logged
		time.Sleep(time.Second + FollowInterval/2) // the follower sleeps while we write
		w, _ := openLog(dir, LogLimits{MaxSize: 64 << 10, Files: 3})
		writeN(w, 0, 5)
		if got := lineNumbers(t, receive(t, ch, 2)); !reflect.DeepEqual(got, []int{3, 4}) {
			t.Errorf("Follow(tail 2) backlog = %v, want [3 4]", got)
		}
		// Across rotations nothing is lost or repeated: 3000 lines
		// rotate about 4 times, written in bursts between polls.
		written := make(chan struct{})
		go func() {
			defer close(written)
			for i := 0; i < 3000; i += 300 {
				writeN(w, 5+i, 300)
				time.Sleep(FollowInterval)
			}
		}()
		if got := lineNumbers(t, receive(t, ch, 3000)); !reflect.DeepEqual(got, seq(5, 3000)) {
			t.Errorf("Follow across rotations: got %d lines, not 5..3004 in order", len(got))
		}
		<-written
		cancel()
		for range ch { // closed once ctx is done
		}
		w.close()
	})
}

func TestFollowTail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		w, _ := openLog(dir, LogLimits{MaxSize: 64 << 10, Files: 3})
		writeN(w, 0, 1000)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if got := lineNumbers(t, receive(t, Follow(ctx, dir, -1), 1000)); !reflect.DeepEqual(got, seq(0, 1000)) {
			t.Errorf("Follow(tail -1): not lines 0..999 in order")
		}
		ch := Follow(ctx, dir, 0)
		time.Sleep(time.Second + FollowInterval/2)
		writeN(w, 1000, 1)
		if got := lineNumbers(t, receive(t, ch, 1)); !reflect.DeepEqual(got, []int{1000}) {
			t.Errorf("Follow(tail 0) = %v, want only the new line 1000", got)
		}
		cancel()
		w.close()
	})
}

// Regression: the log file stayed open after its container stopped, so
// the data disk was busy at shutdown and could not be unmounted.
func TestLogFileClosedWhenNoRunWrites(t *testing.T) {
	dir := t.TempDir()
	w, err := openLog(dir, LogLimits{})
	if err != nil {
		t.Fatal(err)
	}
	current := filepath.Join(dir, LogFile)
	w.acquire(2)
	w.writeLine(time.Now(), "stdout", []byte("hello"))
	if !openHere(current) {
		t.Fatalf("while a run writes, %s is not open", current)
	}
	w.release()
	w.release()
	if openHere(current) {
		t.Errorf("after the last copier ended, %s is still open", current)
	}
	if lines, _ := ReadLogs(dir, -1); len(lines) != 1 {
		t.Errorf("ReadLogs = %q, want the one line", lines)
	}
}

// openHere reports whether this process has path open.
func openHere(path string) bool {
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		if target, _ := os.Readlink("/proc/self/fd/" + fd.Name()); target == path {
			return true
		}
	}
	return false
}
