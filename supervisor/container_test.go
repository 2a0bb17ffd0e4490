package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"allium/supervisor/restart"

	"golang.org/x/sys/unix"
)

// The state machine under testing/synctest: processes are fakes,
// minutes of backoff pass in no time, and every wait is exact.

func TestStartsRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		defer h.close()
		h.add(fakeSpec("a"), restart.History{}, true)
		st := h.wantState("a", Running)
		if st.PID != 1001 || !st.Started.Equal(time.Now()) {
			t.Errorf("Status = pid %d started %v, want pid 1001 started now", st.PID, st.Started)
		}
		if evs := h.eventsOf(EventStart); len(evs) != 1 || evs[0].PID != 1001 || evs[0].State != Starting {
			t.Errorf("start events = %+v, want one for pid 1001 in state starting", evs)
		}
		if evs := h.eventsOf(EventReady); len(evs) != 1 || evs[0].PID != 1001 || evs[0].State != Running {
			t.Errorf("ready events = %+v, want one for pid 1001 in state running (the exec)", evs)
		}
		h.add(fakeSpec("b"), restart.History{}, false)
		h.wantState("b", Stopped)
		if err := h.sup.Add(fakeSpec("b"), restart.History{}, false); !errors.Is(err, ErrExists) {
			t.Errorf("Add(b) twice = %v, want ErrExists", err)
		}
		if err := h.sup.Start("nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Start(nope) = %v, want ErrNotFound", err)
		}
	})
}

func TestCrashBackoffGrowth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		defer h.close()
		h.add(fakeSpec("a"), restart.History{}, true)
		for i, want := range []time.Duration{1, 2, 4, 8, 16} {
			st := h.crash("a", 1)
			if st.State != Backoff || !st.NextRestart.Equal(time.Now().Add(want*time.Second)) {
				t.Fatalf("crash %d: %v, next restart %v; want backoff, restart in %vs", i, st.State, st.NextRestart, want)
			}
			time.Sleep(want * time.Second)
			if st := h.wantState("a", Running); st.Restarts != uint64(i+1) || st.LastExit == nil || st.LastExit.Code != 1 {
				t.Fatalf("after restart %d: restarts %d, last exit %v; want %d, exit 1", i, st.Restarts, st.LastExit, i+1)
			}
		}
		want := []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second}
		if got := h.delays(); !reflect.DeepEqual(got, want) {
			t.Errorf("scheduled delays = %v, want %v", got, want)
		}
		if n := h.node.starts(); n != 6 {
			t.Errorf("starts = %d, want 6", n)
		}
	})
}

func TestBackoffResetsAfterHealthyRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		defer h.close()
		h.add(fakeSpec("a"), restart.History{}, true)
		h.crash("a", 1)
		time.Sleep(time.Second)
		h.crash("a", 1)
		time.Sleep(2 * time.Second)
		time.Sleep(time.Minute) // healthy
		h.crash("a", 1)
		want := []time.Duration{time.Second, 2 * time.Second, time.Second}
		if got := h.delays(); !reflect.DeepEqual(got, want) {
			t.Errorf("scheduled delays = %v, want %v", got, want)
		}
	})
}

func TestCrashloopEntryRetryAndOperatorStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		defer h.close()
		s := fakeSpec("a")
		s.Policy = restart.Policy{Burst: 3, Window: time.Minute, CrashloopRetry: 30 * time.Minute}
		h.add(s, restart.History{}, true)
		h.crash("a", 1)
		time.Sleep(time.Second)
		h.crash("a", 1)
		time.Sleep(2 * time.Second)
		st := h.crash("a", 1)
		if st.State != Crashloop || !st.NextRestart.Equal(time.Now().Add(30*time.Minute)) {
			t.Fatalf("3rd crash: %v next %v, want crashloop retrying in 30m", st.State, st.NextRestart)
		}
		evs := h.eventsOf(EventCrashloop)
		if len(evs) != 1 || evs[0].Delay != 30*time.Minute || !evs[0].History.Crashloop {
			t.Fatalf("crashloop events = %+v, want one with delay 30m", evs)
		}
		time.Sleep(30*time.Minute - time.Nanosecond)
		h.wantState("a", Crashloop)
		time.Sleep(time.Nanosecond)
		h.wantState("a", Running) // the retry
		if st := h.crash("a", 1); st.State != Crashloop {
			t.Fatalf("crash after the retry: %v, want crashloop (it sticks)", st.State)
		}
		if err := h.sup.Start("a"); err != nil {
			t.Fatal(err)
		}
		h.wantState("a", Running)
		if st := h.crash("a", 1); st.State != Backoff || !st.NextRestart.Equal(time.Now().Add(time.Second)) {
			t.Errorf("crash after an operator start: %v next %v, want backoff of 1s", st.State, st.NextRestart)
		}
	})
}

// An operator start of a run that is a crashloop retry clears the
// crashloop without restarting the run.
func TestStartWhileRunningClearsCrashloop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		defer h.close()
		h.add(fakeSpec("a"), restart.History{Crashloop: true}, true)
		pid := h.wantState("a", Running).PID
		h.sup.Start("a")
		if st := h.wantState("a", Running); st.PID != pid {
			t.Errorf("Start of a running container restarted it: pid %d, want %d", st.PID, pid)
		}
		if st := h.crash("a", 1); st.State != Backoff {
			t.Errorf("crash after Start: %v, want backoff", st.State)
		}
	})
}

func TestExit125StaysDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		defer h.close()
		h.add(fakeSpec("a"), restart.History{}, true)
		st := h.crash("a", 125)
		if st.State != Exited || st.LastExit.Code != 125 || !st.NextRestart.IsZero() {
			t.Errorf("after exit 125: %+v, want exited", st)
		}
		time.Sleep(24 * time.Hour)
		h.wantState("a", Exited)
		if n := h.node.starts(); n != 1 {
			t.Errorf("starts = %d, want 1", n)
		}
		if evs := h.eventsOf(EventExit); len(evs) != 1 || !strings.Contains(evs[0].Message, "125") {
			t.Errorf("exit events = %+v, want one naming exit 125", evs)
		}
	})
}

func TestStopDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		defer h.close()
		h.add(fakeSpec("a"), restart.History{}, true)
		h.crash("a", 1)
		if err := h.sup.Stop(context.Background(), "a"); err != nil {
			t.Fatal(err)
		}
		h.wantState("a", Stopped)
		time.Sleep(time.Hour)
		h.wantState("a", Stopped)
		if n := h.node.starts(); n != 1 {
			t.Errorf("starts = %d, want 1: the scheduled restart must be cancelled", n)
		}
	})
}

func TestStopGraceful(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		defer h.close()
		h.add(fakeSpec("a"), restart.History{}, true)
		pid := h.wantState("a", Running).PID
		start := time.Now()
		if err := h.sup.Stop(context.Background(), "a"); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != 0 {
			t.Errorf("Stop of a workload that obeys SIGTERM took %v of fake time, want 0", took)
		}
		// SIGTERM, then the SIGKILL of what is left of the group.
		if got := h.node.killsOf(pid); !equalSignals(got, signals(unix.SIGTERM, unix.SIGKILL)) {
			t.Errorf("signals to group %d = %v, want SIGTERM and the leftover SIGKILL", pid, got)
		}
		st := h.wantState("a", Stopped)
		if st.Restarts != 0 || st.LastExit.Signal != "SIGTERM" {
			t.Errorf("after stop: restarts %d, last exit %v; want 0, killed by SIGTERM", st.Restarts, st.LastExit)
		}
		time.Sleep(time.Hour)
		h.wantState("a", Stopped)
	})
}

func TestStopEscalatesToSIGKILL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		defer h.close()
		h.node.deaf = true
		s := fakeSpec("a")
		s.StopSignal, s.StopTimeout = unix.SIGQUIT, 7*time.Second
		h.add(s, restart.History{}, true)
		pid := h.wantState("a", Running).PID
		start := time.Now()
		if err := h.sup.Stop(context.Background(), "a"); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != 7*time.Second {
			t.Errorf("Stop took %v of fake time, want the 7s stop timeout", took)
		}
		if got := h.node.killsOf(pid); len(got) < 2 || !equalSignals(got[:2], signals(unix.SIGQUIT, unix.SIGKILL)) {
			t.Errorf("signals to group %d = %v, want SIGQUIT then SIGKILL", pid, got)
		}
		st := h.wantState("a", Stopped)
		if st.LastExit.Signal != "SIGKILL" {
			t.Errorf("last exit = %v, want killed by SIGKILL", st.LastExit)
		}
		stops := h.eventsOf(EventStop)
		if len(stops) != 2 || !strings.Contains(stops[1].Message, "SIGKILL") {
			t.Errorf("stop events = %+v, want the signal and the escalation", stops)
		}
	})
}

func TestStopThenStartWhileStopping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		defer h.close()
		h.node.deaf = true
		h.add(fakeSpec("a"), restart.History{}, true)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := h.sup.Stop(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Stop with a 1s context of a deaf workload = %v, want deadline exceeded", err)
		}
		h.wantState("a", Stopping)
		h.sup.Start("a") // the latest wish wins
		time.Sleep(10 * time.Second)
		h.wantState("a", Running)
		if n := h.node.starts(); n != 2 {
			t.Errorf("starts = %d, want 2", n)
		}
	})
}

func TestRestartIsNotAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		defer h.close()
		h.add(fakeSpec("a"), restart.History{}, true)
		old := h.wantState("a", Running).PID
		for range 20 {
			if err := h.sup.Restart("a"); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}
		st := h.wantState("a", Running)
		if st.PID == old || st.Restarts != 0 {
			t.Errorf("after 20 restarts: pid %d restarts %d, want a new pid and 0 restarts", st.PID, st.Restarts)
		}
		if st := h.crash("a", 1); st.State != Backoff || !st.NextRestart.Equal(time.Now().Add(time.Second)) {
			t.Errorf("crash after restarts: %v next %v, want a 1s backoff", st.State, st.NextRestart)
		}
	})
}

func TestRemove(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		defer h.close()
		h.add(fakeSpec("a"), restart.History{}, true)
		if err := h.sup.Remove(context.Background(), "a"); err != nil {
			t.Fatal(err)
		}
		if _, ok := h.sup.Status("a"); ok {
			t.Errorf("Status after Remove: found")
		}
		if len(h.eventsOf(EventRemove)) != 1 {
			t.Errorf("remove events = %d, want 1", len(h.eventsOf(EventRemove)))
		}
		if err := h.sup.Stop(context.Background(), "a"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Stop after Remove = %v, want ErrNotFound", err)
		}
		h.add(fakeSpec("a"), restart.History{}, false) // the name is free again
		h.wantState("a", Stopped)
	})
}

func TestRemoveDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		defer h.close()
		h.add(fakeSpec("a"), restart.History{}, true)
		h.crash("a", 1)
		if err := h.sup.Remove(context.Background(), "a"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		if n := h.node.starts(); n != 1 {
			t.Errorf("starts = %d, want 1", n)
		}
	})
}

func TestReplace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		defer h.close()
		h.add(fakeSpec("a"), restart.History{Crashloop: true, Restarts: 4}, true)
		old := h.wantState("a", Running).PID
		s := fakeSpec("a")
		s.Command = []string{"/bin/new"}
		if err := h.sup.Replace(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		st := h.wantState("a", Running)
		if st.PID == old || st.Restarts != 4 {
			t.Errorf("after Replace: pid %d restarts %d, want a new pid, restarts kept", st.PID, st.Restarts)
		}
		h.node.mu.Lock()
		env := h.node.cmds[len(h.node.cmds)-1].Env[0]
		h.node.mu.Unlock()
		if !strings.Contains(env, "/bin/new") {
			t.Errorf("the new run's config = %s, want /bin/new", env)
		}
		if st := h.crash("a", 1); st.State != Backoff {
			t.Errorf("crash after Replace: %v, want backoff (crashloop cleared)", st.State)
		}
		// Replace of a container that is down starts it.
		h.sup.Stop(context.Background(), "a")
		if err := h.sup.Replace(context.Background(), fakeSpec("a")); err != nil {
			t.Fatal(err)
		}
		h.wantState("a", Running)
		if err := h.sup.Replace(context.Background(), fakeSpec("zz")); !errors.Is(err, ErrNotFound) {
			t.Errorf("Replace(zz) = %v, want ErrNotFound", err)
		}
	})
}

func TestSetupFailureIsFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		defer h.close()
		h.node.setup = `allium shim: chdir to workdir /srv: no such file or directory`
		h.add(fakeSpec("a"), restart.History{}, true)
		st := h.wantState("a", Failed)
		if !strings.Contains(st.Error, "/srv") || st.LastExit.Code != ExitShimRoot {
			t.Errorf("status = %+v, want the shim's message and exit %d", st, ExitShimRoot)
		}
		time.Sleep(time.Hour)
		if n := h.node.starts(); n != 1 {
			t.Errorf("starts = %d, want 1: a failed setup is not retried", n)
		}
		h.sup.Start("a")
		if st := h.wantState("a", Running); st.Error != "" {
			t.Errorf("Error after a good start = %q, want none", st.Error)
		}
	})
}

func TestStartErrorGoesThroughPolicy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		defer h.close()
		h.node.startErr = &os.PathError{Op: "fork/exec", Path: "/nonexistent/init", Err: unix.ENOENT}
		h.add(fakeSpec("a"), restart.History{}, true)
		st := h.wantState("a", Backoff)
		if !strings.Contains(st.Error, "no such file") || st.Restarts != 1 || st.LastExit == nil || st.LastExit.Code != ExitCannotExec {
			t.Errorf("status = %+v, want the exec's error, 1 restart, exit %d", st, ExitCannotExec)
		}
		time.Sleep(time.Second)
		h.wantState("a", Running)
	})
}

// Issue 10: at init's open-file limit, a container's restart failed
// with "pipe2: too many open files" and was counted as the workload's
// crash, pushing a healthy container into crashloop. A start the node
// cannot make is the node's failure: it is reported as such, retried,
// and the restart policy never sees it.
func TestNodeResourceStartFailureIsNotACrash(t *testing.T) {
	for _, errno := range []unix.Errno{unix.EMFILE, unix.ENFILE, unix.ENOMEM, unix.EAGAIN} {
		t.Run(unix.ErrnoName(errno), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { testNodeFailure(t, errno) })
		})
	}
}

func testNodeFailure(t *testing.T, errno unix.Errno) {
	h := newHarness(t)
	defer h.close()
	h.add(fakeSpec("a"), restart.History{}, true)
	h.crash("a", 1) // a workload's crash: the policy counts it
	var delays []time.Duration
	for range 12 { // more than the burst rule's 10 failures
		h.node.startErr = fmt.Errorf("start: %w", os.NewSyscallError("pipe2", errno))
		st := h.status("a")
		time.Sleep(time.Until(st.NextRestart))
		st = h.wantState("a", Backoff)
		if !strings.Contains(st.Error, "the node is out of") || !strings.Contains(st.Error, "not the workload's failure") {
			t.Fatalf("Error = %q, want it to say the node is out of a resource", st.Error)
		}
		delays = append(delays, time.Until(st.NextRestart))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60, 60, 60, 60}
	for i := range want {
		want[i] *= time.Second
	}
	if !reflect.DeepEqual(delays, want) {
		t.Errorf("retry delays = %v, want %v", delays, want)
	}
	time.Sleep(time.Minute)
	st := h.wantState("a", Running)
	if st.Restarts != 1 || st.LastExit == nil || st.LastExit.Code != 1 {
		t.Errorf("after 12 failures of the node: restarts %d, last exit %v; want 1 and the workload's exit 1", st.Restarts, st.LastExit)
	}
	errs := h.eventsOf(EventError)
	if len(errs) != 12 || errs[0].History.Restarts != 1 || errs[0].History.Crashloop || len(errs[11].History.Failures) != 1 {
		t.Errorf("error events = %d, first with history %+v; want 12, with only the workload's failure", len(errs), errs[0].History)
	}
	if n := len(h.eventsOf(EventCrashloop)); n != 0 {
		t.Errorf("crashloop events = %d, want none", n)
	}
	// The next crash of the workload backs off from where it was.
	if st := h.crash("a", 1); st.State != Backoff || !st.NextRestart.Equal(time.Now().Add(2*time.Second)) {
		t.Errorf("the workload's next crash: %v, restart at %v; want backoff in 2s", st.State, st.NextRestart)
	}
}

func TestReadiness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		defer h.close()
		s := fakeSpec("a")
		s.Ready = flakyProbe{readyAt: time.Now().Add(3 * time.Second)}
		h.add(s, restart.History{}, true)
		h.wantState("a", Starting)
		time.Sleep(3 * time.Second)
		h.wantState("a", Running)
		if evs := h.eventsOf(EventReady); len(evs) != 1 || !evs[0].Time.Equal(time.Now()) {
			t.Errorf("ready events = %+v, want one now", evs)
		}
	})
}

func TestNotReadyIsAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		defer h.close()
		s := fakeSpec("a")
		s.Ready = flakyProbe{readyAt: time.Now().Add(time.Hour)}
		s.ReadyTimeout = 5 * time.Second
		h.add(s, restart.History{}, true)
		time.Sleep(5 * time.Second)
		st := h.wantState("a", Backoff)
		if !strings.Contains(st.Error, "not ready within 5s") || st.Restarts != 1 {
			t.Errorf("status = %+v, want not ready within 5s and a restart scheduled", st)
		}
	})
}

func TestStopAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		defer h.close()
		h.node.deaf = true
		for _, n := range []string{"c", "a", "b"} {
			h.add(fakeSpec(n), restart.History{}, true)
		}
		start := time.Now()
		if err := h.sup.StopAll(context.Background()); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != DefaultStopTimeout {
			t.Errorf("StopAll of three deaf workloads took %v, want one stop timeout (%v): in parallel", took, DefaultStopTimeout)
		}
		var names []string
		for _, st := range h.sup.List() {
			names = append(names, st.Name)
			if st.State != Stopped {
				t.Errorf("%s: %v, want stopped", st.Name, st.State)
			}
		}
		if want := []string{"a", "b", "c"}; !reflect.DeepEqual(names, want) {
			t.Errorf("List() names = %v, want %v", names, want)
		}
	})
}

// Every event carries the history to persist, and Add takes it back: a
// restored container keeps its restart count and crashloop.
func TestHistoryRoundTrip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		defer h.close()
		h.add(fakeSpec("a"), restart.History{}, true)
		h.crash("a", 3)
		evs := h.eventsOf(EventRestart)
		hist := evs[len(evs)-1].History
		if hist.Restarts != 1 || hist.LastExit == nil || hist.LastExit.Code != 3 {
			t.Fatalf("history in the event = %+v, want 1 restart, last exit 3", hist)
		}
		h2 := newHarness(t)
		defer h2.close()
		h2.add(fakeSpec("a"), hist, false)
		st := h2.wantState("a", Stopped)
		if st.Restarts != 1 || st.LastExit == nil || st.LastExit.Code != 3 {
			t.Errorf("restored status = %+v, want restarts 1 and last exit 3", st)
		}
	})
}

func TestOperatorSignalIsACrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		defer h.close()
		h.add(fakeSpec("a"), restart.History{}, true)
		pid := h.wantState("a", Running).PID
		if err := h.sup.Signal(context.Background(), "a", unix.SIGKILL); err != nil {
			t.Fatalf("Signal(a, SIGKILL) = %v", err)
		}
		if got := h.node.killsOf(pid); len(got) == 0 || got[0] != unix.SIGKILL {
			t.Errorf("signals to group %d = %v, want SIGKILL first", pid, got)
		}
		// The workload died of it: the policy restarts it, counting a failure.
		time.Sleep(2 * time.Second)
		st := h.wantState("a", Running)
		if st.Restarts != 1 || st.PID == pid {
			t.Errorf("after the kill: restarts %d, pid %d (was %d); want 1 and a new pid", st.Restarts, st.PID, pid)
		}
		h.sup.Stop(context.Background(), "a")
		if err := h.sup.Signal(context.Background(), "a", unix.SIGTERM); !errors.Is(err, ErrNotRunning) {
			t.Errorf("Signal of a stopped container = %v, want ErrNotRunning", err)
		}
	})
}
