package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"allium/internal/testkit"
	"allium/supervisor/restart"
)

// counter writes 1, 2, 3, ... to stdout, each number first and its
// newline a moment later, so that a freeze often finds half a line.
var counter = []string{"sh", "-c", "i=0; while :; do i=$((i+1)); echo -n $i; sleep 0.002; echo; done"}

// numbers are the stdout numbers of the log in dir, in order.
func numbers(t *testing.T, dir string) []int {
	t.Helper()
	lines, err := ReadLogs(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ns []int
	for _, l := range lines {
		_, stream, text := parseLine(t, l)
		if stream != "stdout" {
			continue
		}
		n, err := strconv.Atoi(text)
		if err != nil {
			t.Fatalf("log line %q: not a number", l)
		}
		ns = append(ns, n)
	}
	return ns
}

// checkRuns checks that ns are runs of the counter, each 1, 2, ... n
// with no number lost or twice, and returns how many runs and the last
// number of the first.
func checkRuns(t *testing.T, ns []int) (runs, first int) {
	t.Helper()
	for i, n := range ns {
		switch {
		case n == 1:
			runs++
		case i == 0 || n != ns[i-1]+1:
			t.Fatalf("log: %d after %d at line %d: a number lost or twice", n, ns[max(0, i-1)], i)
		}
		if runs == 1 {
			first = n
		}
	}
	return runs, first
}

// waitCount waits until the log in dir has counted past n.
func waitCount(t *testing.T, dir string, n int) {
	t.Helper()
	waitLog(t, dir, "stdout "+strconv.Itoa(n+1))
}

// waitRuns waits until the log in dir has n runs of the counter.
func waitRuns(t *testing.T, dir string, n int) {
	t.Helper()
	deadline := time.Now().Add(rootWait)
	for {
		if runs, _ := checkRuns(t, numbers(t, dir)); runs >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %s: not %d runs of the counter after %v", dir, n, rootWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freeze(t *testing.T, s *Supervisor) (Frozen, []*os.File) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rootWait)
	defer cancel()
	f, files, err := s.Freeze(ctx)
	if err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	return f, files
}

// A container handed over to a new Supervisor keeps its pid and state,
// its log goes on with every line once and in order, and the new
// Supervisor restarts it when it dies, its restart count going on.
func TestRootHandover(t *testing.T) {
	testkit.NeedRoot(t)
	root, logs := busyboxRoot(t), t.TempDir()
	a := newRootHarness(t)
	spec := Spec{Name: "count", Root: root, Command: counter, LogDir: logs, Policy: restart.Policy{Delay: 10 * time.Millisecond}}
	if err := a.sup.Add(spec, restart.History{Restarts: 5}, true); err != nil {
		t.Fatal(err)
	}
	pid := a.waitFor(EventStart, 1)[0].PID
	a.waitFor(EventReady, 1)
	waitCount(t, logs, 50)

	f, files := freeze(t, a.sup)
	if err := a.sup.Start("count"); !errors.Is(err, ErrFrozen) {
		t.Errorf("Start on a frozen Supervisor = %v, want ErrFrozen", err)
	}
	if err := a.sup.Stop(context.Background(), "count"); !errors.Is(err, ErrFrozen) {
		t.Errorf("Stop on a frozen Supervisor = %v, want ErrFrozen", err)
	}
	if err := a.sup.Add(Spec{Name: "x", Root: root, Command: []string{"true"}}, restart.History{}, true); !errors.Is(err, ErrFrozen) {
		t.Errorf("Add on a frozen Supervisor = %v, want ErrFrozen", err)
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatalf("json.Marshal(Frozen): %v", err)
	}
	t.Logf("frozen: %s", b)
	var f2 Frozen
	if err := json.Unmarshal(b, &f2); err != nil {
		t.Fatalf("json.Unmarshal(Frozen): %v", err)
	}
	if len(f2.Containers) != 1 || len(f2.Containers[0].Logs) != 2 || len(files) != 2 {
		t.Fatalf("Frozen = %s with %d files; want one container, two log streams, two files", b, len(files))
	}

	bh := newRootHarness(t) // the new init's: the same Options
	if err := bh.sup.Adopt(f2, files); err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	st, ok := bh.sup.Status("count")
	if !ok || st.PID != pid || st.State != Running || st.Restarts != 5 {
		t.Fatalf("adopted: Status = %+v, %v; want pid %d, running, 5 restarts", st, ok, pid)
	}
	at := numbers(t, logs)
	waitCount(t, logs, at[len(at)-1]+50)

	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	starts := bh.waitFor(EventStart, 1)
	waitLog(t, logs, "stdout 20") // of the new run, as well as the old
	st, _ = bh.sup.Status("count")
	if starts[0].PID == pid || st.Restarts != 6 || st.LastExit == nil || st.LastExit.Signal != "SIGKILL" {
		t.Errorf("after the kill: pid %d (was %d), restarts %d, last exit %v; want a new pid, 6 restarts, SIGKILL", starts[0].PID, pid, st.Restarts, st.LastExit)
	}
	waitRuns(t, logs, 2)
	_, first := checkRuns(t, numbers(t, logs))
	if first <= at[len(at)-1] {
		t.Errorf("the first run counted to %d, not past %d where it was adopted", first, at[len(at)-1])
	}
	if n := len(a.all()); n != 2 { // start, ready: the old Supervisor saw nothing after the freeze
		t.Errorf("the frozen Supervisor reported %d events, want 2", n)
	}
}

// Freeze then Thaw: the same Supervisor goes on as if nothing happened.
func TestRootFreezeThaw(t *testing.T) {
	testkit.NeedRoot(t)
	root, logs := busyboxRoot(t), t.TempDir()
	h := newRootHarness(t)
	pid := h.add(Spec{Name: "count", Root: root, Command: counter, LogDir: logs, Policy: restart.Policy{Delay: 10 * time.Millisecond}})
	waitCount(t, logs, 50)
	freeze(t, h.sup)
	if err := h.sup.Restart("count"); !errors.Is(err, ErrFrozen) {
		t.Errorf("Restart on a frozen Supervisor = %v, want ErrFrozen", err)
	}
	if _, _, err := h.sup.Freeze(context.Background()); !errors.Is(err, ErrFrozen) {
		t.Errorf("Freeze of a frozen Supervisor = %v, want ErrFrozen", err)
	}
	h.sup.Thaw()
	at := numbers(t, logs)
	waitCount(t, logs, at[len(at)-1]+50)
	if st, _ := h.sup.Status("count"); st.PID != pid || st.State != Running {
		t.Errorf("thawed: Status = %+v; want pid %d, running", st, pid)
	}
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.waitFor(EventStart, 2)
	waitRuns(t, logs, 2)
	if st, _ := h.sup.Status("count"); st.Restarts != 1 {
		t.Errorf("thawed, after a kill: %d restarts, want 1", st.Restarts)
	}
}

// A container in backoff at the freeze is restarted by the new
// Supervisor, not before the deadline the old one had set.
func TestRootHandoverBackoff(t *testing.T) {
	testkit.NeedRoot(t)
	root := busyboxRoot(t)
	a := newRootHarness(t)
	a.add(Spec{Name: "b", Root: root, Command: []string{"sh", "-c", "exit 1"},
		Policy: restart.Policy{Delay: 300 * time.Millisecond, Burst: 100, Window: time.Minute}})
	a.waitFor(EventRestart, 1)
	f, files := freeze(t, a.sup)
	if len(f.Containers) != 1 || f.Containers[0].State != Backoff || f.Containers[0].Next.IsZero() {
		t.Fatalf("Frozen = %+v; want one container in backoff with its deadline", f)
	}
	bh := newRootHarness(t)
	if err := bh.sup.Adopt(f, files); err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	if st, _ := bh.sup.Status("b"); st.State != Backoff || !st.NextRestart.Equal(f.Containers[0].Next) {
		t.Errorf("adopted: Status = %+v; want backoff until %v", st, f.Containers[0].Next)
	}
	start := bh.waitFor(EventStart, 1)[0]
	if start.Time.Before(f.Containers[0].Next) {
		t.Errorf("restarted at %v, before the deadline %v", start.Time, f.Containers[0].Next)
	}
	if st, _ := bh.sup.Status("b"); st.Restarts < 1 {
		t.Errorf("adopted history: %d restarts, want the old one's 1 at least", st.Restarts)
	}
}

// A readiness wait in progress at the freeze goes on in the new
// Supervisor, on the handed-over readiness pipe.
func TestRootHandoverReadiness(t *testing.T) {
	testkit.NeedRoot(t)
	root := busyboxRoot(t)
	a := newRootHarness(t)
	pid := a.add(Spec{Name: "r", Root: root, ReadyFD: 3, ReadyTimeout: time.Hour,
		Command: []string{"sh", "-c", "while [ ! -e /go ]; do sleep 0.01; done; echo >&3; exec sleep 1000"}})
	f, files := freeze(t, a.sup)
	if len(f.Containers) != 1 || f.Containers[0].State != Starting || f.Containers[0].Run.ReadyFile < 0 {
		t.Fatalf("Frozen = %+v; want one container starting, with its readiness pipe", f)
	}
	bh := newRootHarness(t)
	if err := bh.sup.Adopt(f, files); err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	writeFile(t, root+"/go", "")
	if ev := bh.waitFor(EventReady, 1)[0]; ev.PID != pid {
		t.Errorf("ready: pid %d, want %d", ev.PID, pid)
	}
	if st, _ := bh.sup.Status("r"); st.State != Running || st.PID != pid {
		t.Errorf("adopted, ready: Status = %+v; want running, pid %d", st, pid)
	}
}
