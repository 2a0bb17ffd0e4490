package supervisor

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"allium/internal/safe"
)

// FollowInterval is how often Follow looks for new lines. Follow polls
// rather than using inotify: it works on every filesystem, costs one
// read and one stat per interval, and a line shows up at most this late.
const FollowInterval = 250 * time.Millisecond

// Follow sends the logs of dir as they are written, oldest first: first
// the last tail lines already there (all of them if tail < 0, none if
// tail is 0), then each new line. It follows current across rotations
// and waits for it to appear if the container has not logged yet. The
// channel is closed when ctx is done. A reader that falls behind by more
// than the files kept loses the lines rotated away meanwhile, as
// `tail -F` does.
func Follow(ctx context.Context, dir string, tail int) <-chan string {
	out := make(chan string, 64)
	safe.Go(slog.Default(), "supervisor: follow "+dir, func() {
		defer close(out)
		fl := follower{ctx: ctx, path: filepath.Join(dir, LogFile), out: out}
		fl.run(dir, tail)
	})
	return out
}

type follower struct {
	ctx     context.Context
	path    string
	out     chan<- string
	f       *os.File
	partial string // text after the last newline read
}

func (fl *follower) run(dir string, tail int) {
	defer func() {
		if fl.f != nil {
			fl.f.Close()
		}
	}()
	for fl.f == nil {
		if f, err := os.Open(fl.path); err == nil {
			fl.f = f
		} else if !fl.sleep() {
			return
		}
	}
	backlog := append(fl.rotatedLines(dir), fl.read()...)
	if tail >= 0 {
		backlog = backlog[max(0, len(backlog)-tail):]
	}
	if !fl.send(backlog) {
		return
	}
	for fl.send(fl.read()) {
		if fl.rotated() {
			continue // read what was left in the old file, then the new one
		}
		if !fl.sleep() {
			return
		}
	}
}

// rotatedLines reads the rotated files, skipping the one that is the
// file already open (a rotation between open and listing).
func (fl *follower) rotatedLines(dir string) []string {
	var lines []string
	for _, name := range logFiles(dir) {
		if name == LogFile {
			continue
		}
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		if !sameFile(f, fl.f) {
			b, _ := io.ReadAll(f)
			lines = append(lines, splitLines(b)...)
		}
		f.Close()
	}
	return lines
}

// read returns the whole lines written since the last read.
func (fl *follower) read() []string {
	b, _ := io.ReadAll(fl.f)
	if len(b) == 0 {
		return nil
	}
	s := fl.partial + string(b)
	i := strings.LastIndexByte(s, '\n')
	fl.partial = s[i+1:]
	if i < 0 {
		return nil
	}
	return strings.Split(s[:i], "\n")
}

// rotated switches to a new current once the open file has been renamed
// away, reporting whether it did. The old file is read to its end first
// by the caller's loop: rotated is only called after a read.
func (fl *follower) rotated() bool {
	f, err := os.Open(fl.path)
	if err != nil {
		return false
	}
	if sameFile(f, fl.f) {
		f.Close()
		return false
	}
	rest := fl.read() // written between the last read and the rename
	fl.f.Close()
	fl.f, fl.partial = f, ""
	return fl.send(rest)
}

func sameFile(a, b *os.File) bool {
	fa, err1 := a.Stat()
	fb, err2 := b.Stat()
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

func (fl *follower) send(lines []string) bool {
	for _, l := range lines {
		select {
		case fl.out <- l:
		case <-fl.ctx.Done():
			return false
		}
	}
	return fl.ctx.Err() == nil
}

func (fl *follower) sleep() bool {
	t := time.NewTimer(FollowInterval)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-fl.ctx.Done():
		return false
	}
}
