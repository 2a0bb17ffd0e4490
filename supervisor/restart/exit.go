package restart

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Exit is how a run ended: an exit code, or a signal.
type Exit struct {
	// Code is the exit code; for a run killed by a signal it is 128
	// plus the signal's number, as a shell reports it.
	Code int `json:"code"`
	// Signal names the signal that killed it ("SIGKILL"); "" if it
	// exited.
	Signal string `json:"signal,omitempty"`
	// Time is when the supervisor saw the exit.
	Time time.Time `json:"time"`
	// OOM is true when the kernel's OOM killer killed a process of the
	// run's cgroup (its memory limit was reached).
	OOM bool `json:"oom,omitempty"`
}

// ExitFrom is the Exit a wait status describes.
func ExitFrom(ws unix.WaitStatus, t time.Time) Exit {
	switch {
	case ws.Exited():
		return Exit{Code: ws.ExitStatus(), Time: t}
	case ws.Signaled():
		return Exit{Code: 128 + int(ws.Signal()), Signal: unix.SignalName(ws.Signal()), Time: t}
	}
	return Exit{Code: -1, Signal: fmt.Sprintf("status %#x", int(ws)), Time: t}
}

// String is "exit 1", "killed by SIGKILL", or "oom (killed by
// SIGKILL)".
func (e Exit) String() string {
	if e.OOM {
		return "oom (" + e.withoutOOM() + ")"
	}
	return e.withoutOOM()
}

func (e Exit) withoutOOM() string {
	if e.Signal != "" {
		return "killed by " + e.Signal
	}
	return fmt.Sprintf("exit %d", e.Code)
}
