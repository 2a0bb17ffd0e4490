package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"allium/api"
)

// bar is a progress bar on stderr, or nothing when stderr is not a
// terminal or the work is too small to watch.
type bar struct{ pb *progressbar.ProgressBar }

// newBar makes a bar for total bytes, if total is at least min and
// stderr is a terminal.
func (g *globals) newBar(total int64, what string, min int64) bar {
	if total < min || !isTerminal(g.stderr) {
		return bar{}
	}
	return bar{progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(g.stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(), // 4.8/9.5 MiB
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetPredictTime(true), // ETA
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)}
}

func (b bar) set(n int64) {
	if b.pb != nil {
		b.pb.Set64(n)
	}
}

// clear takes the bar off the line, for a message; it comes back on
// the next set.
func (b bar) clear() {
	if b.pb != nil {
		b.pb.Clear()
	}
}

func (b bar) finish() {
	if b.pb != nil {
		b.pb.Finish()
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// uploadView shows an upload: a bar with bytes, rate and ETA on a
// terminal, a line for each interruption, and a summary at the end.
type uploadView struct {
	g       *globals
	file    string
	node    string
	bar     bar
	began   time.Time
	from    int64 // what the node had when this command began
	mu      sync.Mutex
	last    api.UploadProgress
	resumed bool // an interruption was reported; the resume is not yet
}

func (g *globals) newUploadView(img *image, node string, from int64) *uploadView {
	v := &uploadView{g: g, file: filepath.Base(img.path), node: node, began: time.Now(), from: from}
	v.bar = g.newBar(img.size, "sending "+v.file, 0)
	if from > 0 {
		fmt.Fprintf(g.stderr, "%s has %s of %s from an earlier upload; sending the rest\n", node, size(from), v.file)
	}
	return v
}

// update is the upload's progress callback.
func (v *uploadView) update(p api.UploadProgress) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case p.Err != nil && p.Resumes != v.last.Resumes:
		v.bar.clear()
		fmt.Fprintf(v.g.stderr, "upload interrupted after sending %s: %v; resuming in %v\n", size(v.last.Sent), reason(p.Err), p.Wait)
		v.resumed = true
	case p.Err == nil && v.resumed:
		v.bar.clear()
		fmt.Fprintf(v.g.stderr, "%s kept %s; resuming from there\n", v.node, size(p.Confirmed))
		v.resumed = false
	}
	v.bar.set(p.Sent)
	v.last = p
}

// done ends the bar and, when the upload succeeded, prints a summary.
func (v *uploadView) done(err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.bar.finish()
	if err != nil {
		return
	}
	took := time.Since(v.began)
	sent := v.last.Total - v.from
	fmt.Fprintf(v.g.stdout, "sent %s to %s: %s in %v (%s/s)", v.file, v.node, size(sent), took.Round(time.Millisecond), size(rate(sent, took)))
	if n := v.last.Resumes; n > 0 {
		fmt.Fprintf(v.g.stdout, ", resumed %d time%s", n, plural(n))
	}
	fmt.Fprintln(v.g.stdout)
}

func rate(n int64, d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(float64(n) / d.Seconds())
}

// size renders bytes as 512 B, 1.5 KiB, 12.3 MiB, 2.0 GiB.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for ; v >= unit && i < 3; i++ {
		v /= unit
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGT"[i])
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// reason says why an upload attempt ended, without the request's URL.
func reason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if droppedConn(err) {
		return "the connection dropped (" + err.Error() + ")"
	}
	return err.Error()
}
