package main

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"allium/supervisor/restart"

	"golang.org/x/sys/unix"

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
