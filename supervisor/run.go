package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"allium/supervisor/cgroup"
	"allium/supervisor/restart"

	"allium/internal/child"

	"golang.org/x/sys/unix"

	"allium/internal/safe"
)

// run is one start of a container's workload, from fork to exit.
type run struct {
	pid       int // the shim's, then the workload's (the shim's at the namespaces rung): it leads the process group
	gen       uint64
	started   time.Time
	ctx       context.Context    // the run's life: cancelled when it ends or is stopped
	cancel    context.CancelFunc // cancels ctx
	readyR    *os.File           // the readiness pipe's read end, if the spec has one, until the watch takes it
	cg        *cgroup.Group      // the run's cgroup, or nil
	cgName    string             // cg's name in the hierarchy ("containers/NAME")
	oomBefore uint64             // the group's OOM kills before the run

	exit       <-chan unix.WaitStatus // the Starter's (or Adopter's): the run's wait status, once
	statusDone bool                   // the status pipe ended (kStatus): exit is awaited from now on
	setup      string                 // the shim's failure, from the status pipe
	attach     string                 // why the network could not be attached
	watch      *readyWatch            // the readiness wait, from the exec until its verdict
}

func (r *run) stopProbe() { r.cancel() }

// readyWatch is a run's readiness wait: a goroutine that sends its
// verdict on result (nil: ready), which the loop selects.
type readyWatch struct {
	cancel   context.CancelFunc // ends the wait (stop, end of the run, freeze)
	done     chan struct{}      // closed when the goroutine has returned
	result   chan error         // the verdict; buffered
	deadline time.Time          // not ready by then: a failure
	file     *os.File           // the readiness pipe (Spec.ReadyFD), or nil; the watch's owner closes it
}

// endWatch forgets the readiness wait once it has given its verdict,
// or when the run ends, closing the readiness pipe.
func (r *run) endWatch() {
	if w := r.watch; w != nil {
		w.cancel()
		if w.file != nil {
			w.file.Close()
		}
		r.watch = nil
	}
}

// spawn starts a run in state starting; the exec event moves it on. A
// start that fails for want of the node's own resources (open files,
// memory, processes) is the node's failure, not the workload's: it is
// retried without the restart policy (nodeFailure). Any other failure
// to start (exec of the shim) is an exit with code 126 through the
// restart policy.
func (c *container) spawn() {
	c.gen++
	r, err := c.start(c.gen)
	if res := nodeResource(err); res != "" {
		c.nodeFailure(err, res)
		return
	}
	if errors.Is(err, child.ErrNoPID) || errors.Is(err, child.ErrNoStarter) || errors.Is(err, ErrNoNetwork) {
		c.errMsg = "supervisor: " + err.Error()
		c.setState(Failed) // a bug of the wiring: retrying would only start more
		c.emit(Event{Type: EventError, Message: c.errMsg})
		return
	}
	if err != nil {
		c.errMsg = "start: " + err.Error()
		c.emit(Event{Type: EventError, Message: c.errMsg})
		c.applyPolicy(restart.Exit{Code: ExitCannotExec, Time: time.Now()}, 0)
		return
	}
	c.run = r
	c.nodeDelay = 0
	c.setState(Starting)
	c.emit(Event{Type: EventStart, Message: fmt.Sprintf("started pid %d", r.pid), PID: r.pid})
}

// nodeResource names the node's resource whose lack err reports (from
// pipe2, fork or clone in PID 1), or is "" for any other error.
func nodeResource(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, unix.EMFILE):
		return "open files (init's limit)"
	case errors.Is(err, unix.ENFILE):
		return "open files (the kernel's fs.file-max)"
	case errors.Is(err, unix.ENOMEM):
		return "memory"
	case errors.Is(err, unix.EAGAIN):
		return "processes or memory (fork)"
	}
	return ""
}

// Retries of a start that failed for want of the node's resources: the
// delay starts at nodeRetryMin and doubles up to nodeRetryMax.
const (
	nodeRetryMin = time.Second
	nodeRetryMax = time.Minute
)

// nodeFailure reports a start that failed for want of the node's res
// and schedules another. The restart policy does not see it: it is not
// the workload's crash, and counts neither as a restart nor towards a
// crashloop.
func (c *container) nodeFailure(err error, res string) {
	c.nodeDelay = min(max(2*c.nodeDelay, nodeRetryMin), nodeRetryMax)
	c.errMsg = fmt.Sprintf("the node is out of %s: start: %v; not the workload's failure, retrying in %v", res, err, c.nodeDelay)
	c.schedule(Backoff, c.nodeDelay)
	c.emit(Event{Type: EventError, Message: c.errMsg, Delay: c.nodeDelay})
}

// start starts the shim with the log, status and readiness pipes and the
// goroutines that serve them.
func (c *container) start(gen uint64) (*run, error) {
	var ps pipeSet
	defer ps.closeChild() // the child has its ends once started
	outR, outW, errR, errW := c.logPipes(&ps)
	statusR, statusW, err := ps.pipe()
	if err != nil {
		ps.closeParent()
		return nil, err
	}
	var readyR, readyW *os.File
	if c.spec.ReadyFD != 0 {
		if readyR, readyW, err = ps.pipe(); err != nil {
			ps.closeParent()
			return nil, err
		}
	}
	gateR, gateW, err := c.netGate(&ps)
	if err != nil {
		ps.closeParent()
		return nil, err
	}
	cg, err := c.cgroupFor()
	if err != nil {
		c.emit(Event{Type: EventError, Message: err.Error() + "; this run has no cgroup limits"})
		cg = nil
	}
	spec := c.spec
	if cg != nil {
		if _, v2 := cg.Dir(); !v2 {
			spec.CgroupProcs = cg.ProcsFiles() // the shim joins before it forks
			if err := ownProcs(spec); err != nil {
				c.emit(Event{Type: EventError, Message: err.Error() + "; this run has no cgroup limits"})
				spec.CgroupProcs = nil
			}
		}
	}
	cmd := Command(c.sup.opts.Exe, spec, outW, errW)
	withStatus(cmd, statusW, c.spec.ReadyFD, readyW)
	if gateR != nil {
		withNetGate(cmd, gateR)
	}
	oomBefore := oomKills(cg)
	var ch <-chan unix.WaitStatus
	err = c.startIn(cg, cmd, func() (err error) {
		ch, err = child.Start(c.sup.opts.Starter, cmd) // never a pid of -1 or 1 to signal
		return err
	})
	if err != nil {
		ps.closeParent()
		if gateW != nil {
			gateW.Close()
		}
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{pid: cmd.Process.Pid, gen: gen, started: time.Now(), ctx: ctx, cancel: cancel, readyR: readyR,
		cg: cg, oomBefore: oomBefore, exit: ch}
	if cg != nil {
		r.cgName = "containers/" + c.spec.Name
	}
	if outR != nil {
		c.copyLog(outR, lineCopier{stream: "stdout", w: c.logs})
		c.copyLog(errR, lineCopier{stream: "stderr", w: c.logs})
	}
	safe.Go(c.sup.opts.Log, "supervisor: "+c.spec.Name+" status", func() {
		attach := c.attach(r.pid, gateW)
		c.readStatus(gen, statusR, attach)
	})
	return r, nil
}

// copyLog starts a copier of the log stream r, which carries on what
// lc had cut (a new run: nothing; a thaw or an adoption: a partial
// line).
func (c *container) copyLog(r *os.File, lc lineCopier) {
	live := c.copiers[:0]
	for _, cp := range c.copiers {
		select {
		case <-cp.done: // ended at EOF
		default:
			live = append(live, cp)
		}
	}
	cp := &copier{r: r, lc: lc, done: make(chan struct{})}
	c.copiers = append(live, cp)
	lw := lc.w
	lw.acquire(1)
	safe.Go(c.sup.opts.Log, "supervisor: "+c.spec.Name+" "+lc.stream, func() {
		defer close(cp.done)
		defer lw.release()
		cp.eof = cp.lc.copy(r)
	})
}

// netGate makes the network gate of a run with a private network: the
// shim reads its end (the child's, in ps) and waits for PID 1's byte
// before it starts the workload; PID 1 writes it on the other end once
// the network is attached (attach). nils without a private network.
func (c *container) netGate(ps *pipeSet) (r, w *os.File, err error) {
	if !c.spec.PrivateNet {
		return nil, nil, nil
	}
	if c.sup.opts.Network == nil {
		return nil, nil, fmt.Errorf("%w: %s", ErrNoNetwork, c.spec.Name)
	}
	if r, w, err = os.Pipe(); err != nil {
		return nil, nil, fmt.Errorf("supervisor: pipe: %w", err)
	}
	ps.child = append(ps.child, r) // the shim's end, closed here once it started
	return r, w, nil
}

// attach attaches the run's network (Options.Network) and opens the
// gate; or, when that fails, kills the shim before its workload starts
// and says why. It returns "" without a gate (no private network).
func (c *container) attach(pid int, gate *os.File) string {
	if gate == nil {
		return ""
	}
	defer gate.Close()
	ctx, cancel := context.WithTimeout(context.Background(), attachTimeout)
	defer cancel()
	err := c.sup.opts.Network.Attach(ctx, c.spec.Name, pid)
	if err == nil {
		if _, err = gate.Write([]byte{'\n'}); err == nil {
			return ""
		}
		err = fmt.Errorf("open the network gate: %w", err)
	}
	c.sup.opts.Killer.Kill(-pid, unix.SIGKILL) // ESRCH: it died already, the exit tells
	return "network: " + err.Error()
}

// attachTimeout bounds one Attach.
const attachTimeout = 30 * time.Second

// readStatus reads the status pipe to its end: EOF alone is the exec,
// a message the shim's failure. attach is the network's failure, if
// any: the shim was killed before the exec. The loop then awaits the
// exit (exitCh).
func (c *container) readStatus(gen uint64, status *os.File, attach string) {
	msg, _ := io.ReadAll(io.LimitReader(status, 4<<10))
	status.Close()
	c.send(event{kind: kStatus, gen: gen, setup: string(msg), attach: attach})
}

// logPipes returns the stdout and stderr pipes, or nils (the workload
// gets /dev/null) when the spec has no LogDir or it cannot be opened.
func (c *container) logPipes(ps *pipeSet) (outR, outW, errR, errW *os.File) {
	dir := c.spec.LogDir
	if dir == "" {
		return nil, nil, nil, nil
	}
	if c.logs == nil || c.logs.dir != dir {
		if c.logs != nil {
			c.logs.close()
		}
		var err error
		if c.logs, err = openLog(dir, c.sup.opts.Logs); err != nil {
			c.emit(Event{Type: EventError, Message: err.Error() + "; output discarded"})
			return nil, nil, nil, nil
		}
	}
	outR, outW, err1 := ps.pipe()
	errR, errW, err2 := ps.pipe()
	if err := errors.Join(err1, err2); err != nil {
		for _, f := range []*os.File{outR, errR} {
			if f != nil {
				f.Close()
			}
		}
		c.emit(Event{Type: EventError, Message: "supervisor: log pipes: " + err.Error() + "; output discarded"})
		return nil, nil, nil, nil
	}
	return outR, outW, errR, errW
}

// watchReady starts the live run's readiness wait, until deadline, on
// the readiness pipe f (Spec.ReadyFD) or with the probe.
func (c *container) watchReady(deadline time.Time, f *os.File) {
	ctx, cancel := context.WithCancel(c.run.ctx)
	w := &readyWatch{cancel: cancel, done: make(chan struct{}), result: make(chan error, 1), deadline: deadline, file: f}
	c.run.watch = w
	probe, fd, timeout := c.spec.Ready, c.spec.ReadyFD, c.spec.readyTimeout()
	wait := func() error { return waitReadyUntil(ctx, probe, timeout, deadline) }
	if fd != 0 {
		wait = func() error { return waitReadyFD(ctx, f, fd, timeout, deadline) }
	}
	safe.Go(c.sup.opts.Log, "supervisor: "+c.spec.Name+" ready", func() {
		defer close(w.done)
		// Cancelled (the run ended, is being stopped, or a freeze): no
		// verdict, unless it was ready.
		if err := wait(); err == nil || ctx.Err() == nil {
			w.result <- err
		}
	})
}

// waitReadyFD waits for a newline on the readiness pipe, until
// deadline (timeout after the exec, for the message).
func waitReadyFD(ctx context.Context, f *os.File, fd int, timeout time.Duration, deadline time.Time) error {
	f.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 512)
	for {
		n, err := f.Read(buf)
		for _, b := range buf[:n] {
			if b == '\n' {
				return nil
			}
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("not ready within %v: no newline on fd %d", timeout, fd)
		case errors.Is(err, io.EOF):
			return fmt.Errorf("not ready: fd %d closed without a newline", fd)
		case err != nil:
			return fmt.Errorf("readiness fd %d: %w", fd, err)
		}
	}
}

// endRun ends the live run after its exit: it stops the readiness wait,
// kills what is left of its process group, and records the exit.
func (c *container) endRun(ws unix.WaitStatus) (restart.Exit, time.Duration) {
	r := c.run
	c.run = nil
	r.cancel()
	r.endWatch()
	if r.readyR != nil {
		r.readyR.Close() // no wait began
	}
	// Children left behind die with the run, as they do at the
	// namespaces rung when the shim, PID 1 of the container, exits.
	// ESRCH: none.
	c.sup.opts.Killer.Kill(-r.pid, unix.SIGKILL)
	if r.cg != nil {
		// And whatever left the group but not the cgroup (setsid).
		if err := r.cg.Kill(); err != nil {
			c.emit(Event{Type: EventError, Message: err.Error()})
		}
	}
	ex := restart.ExitFrom(ws, time.Now())
	ex.OOM = oomKills(r.cg) > r.oomBefore
	c.hist.LastExit = &ex
	return ex, time.Since(r.started)
}

// signal sends sig to the live run's process group. ESRCH means the
// group is gone and its exit is on the way.
func (c *container) signal(sig unix.Signal) error {
	err := c.sup.opts.Killer.Kill(-c.run.pid, sig)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("supervisor: kill -%s -%d: %w", unix.SignalName(sig), c.run.pid, err)
	}
	return nil
}

// pipeSet holds the pipes of a start: the parent's ends (read) and the
// child's (write).
type pipeSet struct{ parent, child []*os.File }

func (ps *pipeSet) pipe() (r, w *os.File, err error) {
	r, w, err = os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("supervisor: pipe: %w", err)
	}
	ps.parent = append(ps.parent, r)
	ps.child = append(ps.child, w)
	return r, w, nil
}

func (ps *pipeSet) closeChild() {
	for _, f := range ps.child {
		f.Close()
	}
}

func (ps *pipeSet) closeParent() {
	for _, f := range ps.parent {
		f.Close()
	}
}
