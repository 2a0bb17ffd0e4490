package supervisor

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"allium/supervisor/restart"

	"golang.org/x/sys/unix"
)

// fakeNode is a Starter and a Killer with no processes: each start is a
// fake process the test ends with exit, or a signal ends.
type fakeNode struct {
	mu       sync.Mutex
	nextPID  int
	procs    map[int]*fakeProc
	cmds     []*exec.Cmd
	kills    []kill
	startErr error  // the next start fails with it
	setup    string // the next start's shim fails before exec with it
	deaf     bool   // processes started from now on ignore SIGTERM
}

type fakeProc struct {
	ch    chan unix.WaitStatus
	alive bool
	deaf  bool
}

type kill struct {
	pid int
	sig unix.Signal
}

func newFakeNode() *fakeNode { return &fakeNode{nextPID: 1000, procs: map[int]*fakeProc{}} }

func (n *fakeNode) Start(cmd *exec.Cmd) (<-chan unix.WaitStatus, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.startErr; err != nil {
		n.startErr = nil
		return nil, err
	}
	n.nextPID++
	pid := n.nextPID
	cmd.Process = &os.Process{Pid: pid}
	n.cmds = append(n.cmds, cmd)
	p := &fakeProc{ch: make(chan unix.WaitStatus, 1), alive: true, deaf: n.deaf}
	n.procs[pid] = p
	if n.setup != "" {
		cmd.ExtraFiles[0].WriteString(n.setup) // the status pipe, fd 3
		n.setup = ""
		p.end(unix.WaitStatus(ExitShimRoot << 8))
	}
	return p.ch, nil
}

func (n *fakeNode) Kill(pid int, sig unix.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.kills = append(n.kills, kill{pid, sig})
	p := n.procs[-pid]
	if pid >= 0 || p == nil || !p.alive {
		return unix.ESRCH
	}
	if sig == unix.SIGKILL || !p.deaf {
		p.end(unix.WaitStatus(sig))
	}
	return nil
}

func (p *fakeProc) end(ws unix.WaitStatus) {
	p.alive = false
	p.ch <- ws
}

// exit ends the fake process pid with code.
func (n *fakeNode) exit(t *testing.T, pid, code int) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.procs[pid]
	if p == nil || !p.alive {
		t.Fatalf("exit(%d): no such live process", pid)
	}
	p.end(unix.WaitStatus(code << 8))
}

func (n *fakeNode) starts() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.cmds)
}

func (n *fakeNode) killsOf(pid int) []unix.Signal {
	n.mu.Lock()
	defer n.mu.Unlock()
	var sigs []unix.Signal
	for _, k := range n.kills {
		if k.pid == -pid {
			sigs = append(sigs, k.sig)
		}
	}
	return sigs
}

// harness is a Supervisor on a fakeNode, recording events. Make it
// inside a synctest bubble.
type harness struct {
	t    *testing.T
	node *fakeNode
	sup  *Supervisor

	mu     sync.Mutex
	events []Event
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, node: newFakeNode()}
	h.sup = New(Options{Exe: "/nonexistent/init", Starter: h.node, Killer: h.node, Rand: half, OnEvent: h.record})
	return h
}

// close removes every container, so that the bubble's goroutines end.
func (h *harness) close() {
	for _, st := range h.sup.List() {
		if err := h.sup.Remove(context.Background(), st.Name); err != nil {
			h.t.Errorf("Remove(%s) = %v", st.Name, err)
		}
	}
}

func (h *harness) record(ev Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, ev)
}

// eventsOf returns the events of type typ so far.
func (h *harness) eventsOf(typ EventType) []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Event
	for _, ev := range h.events {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

func (h *harness) delays() []time.Duration {
	var ds []time.Duration
	for _, ev := range h.eventsOf(EventRestart) {
		ds = append(ds, ev.Delay)
	}
	return ds
}

func (h *harness) add(s Spec, hist restart.History, run bool) {
	h.t.Helper()
	if err := h.sup.Add(s, hist, run); err != nil {
		h.t.Fatalf("Add(%s) = %v", s.Name, err)
	}
	synctest.Wait()
}

// status waits for the bubble to settle and returns name's status.
func (h *harness) status(name string) Status {
	h.t.Helper()
	synctest.Wait()
	st, ok := h.sup.Status(name)
	if !ok {
		h.t.Fatalf("Status(%s): not found", name)
	}
	return st
}

func (h *harness) wantState(name string, want State) Status {
	h.t.Helper()
	st := h.status(name)
	if st.State != want {
		h.t.Fatalf("Status(%s).State = %v (error %q), want %v", name, st.State, st.Error, want)
	}
	return st
}

// crash ends name's run with code and returns the status after.
func (h *harness) crash(name string, code int) Status {
	h.t.Helper()
	st := h.wantState(name, Running)
	h.node.exit(h.t, st.PID, code)
	return h.status(name)
}

func fakeSpec(name string) Spec {
	return Spec{Name: name, Root: "/containers/" + name, Command: []string{"/bin/app"}}
}

// flakyProbe fails until its time comes.
type flakyProbe struct{ readyAt time.Time }

func (p flakyProbe) Check(ctx context.Context) error {
	if time.Now().Before(p.readyAt) {
		return errors.New("connection refused")
	}
	return nil
}

func signals(s ...unix.Signal) []unix.Signal { return s }

func equalSignals(a, b []unix.Signal) bool { return slices.Equal(a, b) }

// half is a Rand without jitter.
func half() float64 { return 0.5 }
