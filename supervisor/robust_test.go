package supervisor

import (
	"context"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"testing/synctest"

	"allium/supervisor/restart"

	"golang.org/x/sys/unix"
)

// PID 1 must never die, nor be signalled by mistake.

// A panicking OnEvent costs nothing but its event.
func TestOnEventPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFakeNode()
		log := slog.New(slog.DiscardHandler)
		sup := New(Options{Starter: n, Killer: n, Rand: half, Log: log, OnEvent: func(Event) { panic("boom") }})
		sup.Add(fakeSpec("a"), restart.History{}, true)
		defer sup.Remove(context.Background(), "a")
		synctest.Wait()
		if err := sup.Stop(context.Background(), "a"); err != nil {
			t.Fatal(err)
		}
		if st, _ := sup.Status("a"); st.State != Stopped {
			t.Errorf("state = %v, want stopped", st.State)
		}
	})
}

// releasingStarter does what PID 1's reaper did at first: it releases
// the process, which sets cmd.Process.Pid to -1.
type releasingStarter struct{ *fakeNode }

func (s releasingStarter) Start(cmd *exec.Cmd) (<-chan unix.WaitStatus, error) {
	ch, err := s.fakeNode.Start(cmd)
	cmd.Process.Pid = -1 // as os.Process.Release does
	return ch, err
}

// Regression: a Starter that calls os.Process.Release leaves Pid -1, and
// a stop would then send kill(1, SIGTERM) to PID 1: a poweroff. The
// container must fail instead, and nothing be signalled.
func TestStarterWithoutPID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFakeNode()
		sup := New(Options{Starter: releasingStarter{n}, Killer: n, Rand: half})
		sup.Add(fakeSpec("a"), restart.History{}, true)
		defer sup.Remove(context.Background(), "a")
		synctest.Wait()
		st, _ := sup.Status("a")
		if st.State != Failed || !strings.Contains(st.Error, "Release") {
			t.Errorf("status = %v %q, want failed naming Release", st.State, st.Error)
		}
		sup.Stop(context.Background(), "a")
		if len(n.kills) != 0 {
			t.Errorf("kills = %v, want none", n.kills)
		}
	})
}
