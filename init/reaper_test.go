package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"allium/supervisor/restart"

	"golang.org/x/sys/unix"

	"allium/internal/child"
	"allium/internal/testkit"
)

func TestReaperDeliversAndReapsOrphans(t *testing.T) {
	// Make this test process adopt orphans, as PID 1 does.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skipf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	var logs testkit.LockedBuffer
	r := newReaper(testLogger(&logs))

	cmd := exec.Command("/bin/sh", "-c", "sleep 0.2 & exit 3")
	status, err := r.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	// Regression: Process.Release sets Pid to -1, and kill(-1) kills
	// every process there is.
	if cmd.Process.Pid <= 0 {
		t.Fatalf("after reaper.Start, cmd.Process.Pid = %d, want the child's pid", cmd.Process.Pid)
	}
	var ws unix.WaitStatus
	deadline := time.After(10 * time.Second)
	for got := false; !got; {
		r.reap()
		select {
		case ws = <-status:
			got = true
		case <-deadline:
			t.Fatalf("the child's status never arrived")
		case <-time.After(20 * time.Millisecond):
		}
	}
	if !ws.Exited() || ws.ExitStatus() != 3 {
		t.Errorf("reaper delivered %v, want exit 3", restart.ExitFrom(ws, time.Now()))
	}
	for !strings.Contains(logs.String(), "reaped an orphan") {
		select {
		case <-deadline:
			t.Fatalf("the orphaned sleep was never reaped; log:\n%s", logs.String())
		case <-time.After(20 * time.Millisecond):
			r.reap()
		}
	}
	if r.running() != 0 {
		t.Errorf("reaper.running() = %d after every child exited", r.running())
	}
}

// A child started by no one here (a handover's: the old init's) is
// adopted: its status is delivered whether it exited before Adopt, a
// zombie whose SIGCHLD is gone, or after; an expected pid's exit reaped
// before Adopt is held, not lost as an orphan's.
func TestReaperAdopts(t *testing.T) {
	var logs testkit.LockedBuffer
	r := newReaper(testLogger(&logs))
	start := func(code string) (*exec.Cmd, io.WriteCloser) {
		t.Helper()
		cmd := exec.Command("/bin/sh", "-c", "read x; exit "+code)
		w, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil { // not through the reaper: the old init's child
			t.Fatal(err)
		}
		return cmd, w
	}
	exited := func(pid int) { // until it is a zombie, without reaping it
		t.Helper()
		for {
			var info unix.Siginfo
			if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != unix.EINTR {
				if err != nil {
					t.Fatalf("waitid(%d): %v", pid, err)
				}
				return
			}
		}
	}
	check := func(what string, ch <-chan unix.WaitStatus, code int) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case ws := <-ch:
				if !ws.Exited() || ws.ExitStatus() != code {
					t.Errorf("%s: delivered %v, want exit %d", what, restart.ExitFrom(ws, time.Now()), code)
				}
				return
			case <-deadline:
				t.Fatalf("%s: the status never arrived", what)
			case <-time.After(20 * time.Millisecond):
				r.reap() // as SIGCHLD would
			}
		}
	}

	zombie, w := start("3")
	w.Close()
	exited(zombie.Process.Pid)
	ch, err := r.Adopt(zombie.Process.Pid)
	if err != nil {
		t.Fatalf("Adopt(zombie %d): %v", zombie.Process.Pid, err)
	}
	select { // Adopt reaped it itself: no reap is needed
	case ws := <-ch:
		if ws.ExitStatus() != 3 {
			t.Errorf("Adopt(zombie): delivered %v, want exit 3", restart.ExitFrom(ws, time.Now()))
		}
	default:
		t.Errorf("Adopt(zombie %d): no status on return", zombie.Process.Pid)
	}

	later, w := start("4")
	ch, err = r.Adopt(later.Process.Pid)
	if err != nil {
		t.Fatalf("Adopt(%d): %v", later.Process.Pid, err)
	}
	w.Close()
	check("adopted, exits later", ch, 4)

	held, w := start("5")
	r.expect(held.Process.Pid)
	w.Close()
	exited(held.Process.Pid)
	r.reap() // before Adopt: held, not an orphan
	ch, err = r.Adopt(held.Process.Pid)
	if err != nil {
		t.Fatalf("Adopt(%d) after its exit was reaped: %v", held.Process.Pid, err)
	}
	check("expected, reaped before Adopt", ch, 5)
	if strings.Contains(logs.String(), "reaped an orphan") {
		t.Errorf("an adopted child was logged as an orphan:\n%s", logs.String())
	}

	if _, err := r.Adopt(zombie.Process.Pid); !errors.Is(err, child.ErrNotChild) {
		t.Errorf("Adopt of a pid reaped already = %v, want ErrNotChild", err)
	}
	if r.running() != 0 {
		t.Errorf("reaper.running() = %d after every child exited", r.running())
	}
}

// A paused reaper leaves an exited child a zombie (a handover's next
// init reaps it); resume delivers it.
func TestReaperPause(t *testing.T) {
	var logs testkit.LockedBuffer
	r := newReaper(testLogger(&logs))
	r.pause()
	cmd := exec.Command("/bin/sh", "-c", "exit 4")
	status, err := r.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	var info unix.Siginfo
	for {
		if err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != unix.EINTR {
			break
		}
	}
	r.reap()
	select {
	case ws := <-status:
		t.Fatalf("a paused reaper delivered %v", ws)
	default:
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", cmd.Process.Pid)); err != nil {
		t.Fatalf("the child was reaped while paused: %v", err)
	}
	r.resume()
	if ws := <-status; !ws.Exited() || ws.ExitStatus() != 4 {
		t.Errorf("after resume: %v, want exit 4", restart.ExitFrom(ws, time.Now()))
	}
}
