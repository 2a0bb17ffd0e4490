package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// fakeKernel records what the sequences asked of the kernel.
type fakeKernel struct {
	mu    sync.Mutex
	calls []string
	// mountErr fails the mount of a target (relative to the test root).
	mountErr map[string]error
	root     string
	// running is how many processes Processes pretends still exist; each
	// look finds one fewer.
	running int
}

func (f *fakeKernel) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

// rel shows a path below the test root as the node would see it.
func (f *fakeKernel) rel(p string) string {
	if r, ok := strings.CutPrefix(p, f.root); ok {
		return "/" + strings.TrimPrefix(r, "/")
	}
	return p
}

func (f *fakeKernel) Mount(source, target, fstype string, flags uintptr, data string) error {
	if err := f.mountErr[f.rel(target)]; err != nil {
		return err
	}
	f.record("mount %s %s %s", fstype, f.rel(source), f.rel(target))
	return nil
}

func (f *fakeKernel) Unmount(target string, flags int) error {
	f.record("unmount %s", f.rel(target))
	return nil
}

func (f *fakeKernel) LoadModule(path string) error {
	f.record("load %s", f.rel(path))
	return nil
}

func (f *fakeKernel) Kill(pid int, sig unix.Signal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("kill %d %s", pid, unix.SignalName(sig)))
	return nil
}

func (f *fakeKernel) Processes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.running > 0 {
		f.running--
	}
	return f.running
}

func (f *fakeKernel) Sync() { f.record("sync") }

func (f *fakeKernel) SetClock(t time.Time) error {
	f.record("setclock %s", t.UTC().Format(time.RFC3339))
	return nil
}

func (f *fakeKernel) Reboot(cmd int) error {
	f.record("reboot %#x", cmd)
	return nil
}

func (f *fakeKernel) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// indexOf returns the position of the first call starting with prefix.
func indexOf(calls []string, prefix string) int {
	for i, c := range calls {
		if strings.HasPrefix(c, prefix) {
			return i
		}
	}
	return -1
}

func testLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
