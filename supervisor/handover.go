package supervisor

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"allium/internal/child"
	"allium/internal/safe"
	"allium/supervisor/restart"
)

// A handover in place: PID 1 execs a new init, which keeps pid 1, its
// children (every container's shim or workload) and the descriptors
// without close-on-exec. The old Supervisor freezes, the new one adopts:
//
//	old init                                  new init (same pid 1)
//	reaper: stop reaping
//	Freeze(ctx) ─> Frozen + files
//	  (every loop at a safe point, copiers
//	   paused at a line boundary)
//	JSON(Frozen), files without CLOEXEC ─execve─> Frozen, files (os.NewFile)
//	                                          reaper: expect every Run.PID
//	                                          New(same Options), UseCgroups
//	                                          Adopt(Frozen, files)
//	execve failed: reaper on, Thaw()          supervision goes on: same pids,
//	                                          history, timers, state, logs
//
// The old init must stop reaping before Freeze: an exit it reaped after
// would die with it, and the new one would wait for a pid that is no
// longer a child. Freeze does not wait for any exit, so it completes
// with reaping stopped.

// Frozen describes a frozen Supervisor's containers: JSON, with the
// files it hands over (the log pipes' and readiness pipes' read ends)
// named by their index in the slice that comes with it.
type Frozen struct {
	Containers []FrozenContainer `json:"containers"`
}

// FrozenContainer is one container's supervision, frozen.
type FrozenContainer struct {
	Spec FrozenSpec `json:"spec"`
	// Pending is the spec a Replace swaps in once the run is down
	// (Stopping); nil if none.
	Pending *FrozenSpec     `json:"pending,omitempty"`
	State   State           `json:"state"`
	Error   string          `json:"error,omitempty"`
	History restart.History `json:"history"`
	// Gen numbers the container's runs; the next run is Gen+1.
	Gen uint64 `json:"gen"`
	// Next is when a scheduled restart happens (Backoff, Crashloop);
	// zero if none is.
	Next time.Time `json:"next,omitzero"`
	// NodeDelay is the last retry's delay after the node lacked the
	// resources to start (0 after a start).
	NodeDelay time.Duration `json:"node_delay,omitempty"`
	// After is what follows the stop in progress (Stopping): "stop",
	// "start", "remove" or "policy"; KillAt is when SIGKILL follows.
	After  string    `json:"after,omitempty"`
	KillAt time.Time `json:"kill_at,omitzero"`
	// Run is the live run (Starting, Running, Stopping); nil if none.
	Run *FrozenRun `json:"run,omitempty"`
	// Logs are the log streams still open, of the run and of ended
	// runs still draining.
	Logs []FrozenLog `json:"logs,omitempty"`
}

// FrozenSpec is a Spec with its readiness probe (Spec.Ready), which a
// Spec's JSON leaves out.
type FrozenSpec struct {
	Spec
	ReadyTCP  string `json:"ready_tcp,omitempty"`  // TCPProbe.Addr
	ReadyHTTP string `json:"ready_http,omitempty"` // HTTPProbe.URL
}

// FrozenRun is a live run. Its status pipe has always ended: the
// workload runs (or the shim failed, Setup, and exits).
type FrozenRun struct {
	PID     int       `json:"pid"`
	Gen     uint64    `json:"gen"`
	Started time.Time `json:"started"`
	// Cgroup is the run's group in the hierarchy ("containers/NAME");
	// "" if it has none.
	Cgroup    string `json:"cgroup,omitempty"`
	OOMBefore uint64 `json:"oom_before,omitempty"`
	Setup     string `json:"setup,omitempty"`
	Attach    string `json:"attach,omitempty"`
	// ReadyDeadline is the end of the readiness wait in progress; zero
	// if none is. ReadyFile is the readiness pipe's index in the files,
	// -1 if none (a probe).
	ReadyDeadline time.Time `json:"ready_deadline,omitzero"`
	ReadyFile     int       `json:"ready_file"`
}

// FrozenLog is a log stream: its pipe's read end (File, an index in
// the files) and the start of a line read but not yet ended, which the
// next copier writes first.
type FrozenLog struct {
	Stream  string `json:"stream"` // "stdout" or "stderr"
	File    int    `json:"file"`
	Partial []byte `json:"partial,omitempty"`
	Split   bool   `json:"split,omitempty"` // the line before was cut at MaxLine
}

var afterNames = map[afterStop]string{thenStop: "stop", thenStart: "start", thenRemove: "remove", thenPolicy: "policy"}

// freezeRequest is a Freeze's request to one container's loop.
type freezeRequest struct {
	reply chan frozenPart // buffered
	thaw  <-chan struct{} // closed by Thaw
}

// frozenPart is one container's answer, its files numbered from 0.
type frozenPart struct {
	fc      FrozenContainer
	files   []*os.File
	removed bool
	err     error
}

// Freeze stops every container's supervision at a safe point without
// touching its processes, and describes it, for a new Supervisor's
// Adopt. A safe point is between two events, with the run's status pipe
// ended: a run still starting is waited for until its shim has exec'd
// the workload (or failed); a stop in progress is handed over as it is.
// A readiness verdict or an exit already delivered is handled first.
// The log copiers stop at a line boundary; the rest of a line is in the
// description. The files are the supervisor's own: the caller must not
// close them.
//
// From then on every operation answers ErrFrozen, until Thaw. Requests
// accepted before Freeze and not yet handled are handled after Thaw, or
// are lost with the old process. If ctx ends first, Freeze thaws and
// returns its error.
func (s *Supervisor) Freeze(ctx context.Context) (Frozen, []*os.File, error) {
	s.mu.Lock()
	if s.frozen != nil {
		s.mu.Unlock()
		return Frozen{}, nil, ErrFrozen
	}
	thaw := make(chan struct{})
	s.frozen = thaw
	cs := make([]*container, 0, len(s.containers))
	for _, c := range s.containers {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	slices.SortFunc(cs, func(a, b *container) int { return cmp.Compare(a.spec.Name, b.spec.Name) })

	reqs := make([]*freezeRequest, len(cs))
	for i, c := range cs {
		reqs[i] = &freezeRequest{reply: make(chan frozenPart, 1), thaw: thaw}
		if err := c.sendCtx(ctx, event{kind: kFreeze, freeze: reqs[i]}); err != nil {
			s.Thaw()
			return Frozen{}, nil, err
		}
	}
	var f Frozen
	var files []*os.File
	for i, c := range cs {
		p, err := c.frozen(ctx, reqs[i])
		if err == nil {
			err = p.err
		}
		if err != nil {
			s.Thaw()
			return Frozen{}, nil, err
		}
		if p.removed {
			continue
		}
		p.fc.renumber(len(files))
		files = append(files, p.files...)
		f.Containers = append(f.Containers, p.fc)
	}
	return f, files, nil
}

// Thaw undoes Freeze: every container goes on as if nothing happened
// (after a handover whose execve failed). It is a no-op when not frozen.
func (s *Supervisor) Thaw() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.frozen != nil {
		close(s.frozen)
		s.frozen = nil
	}
}

func (s *Supervisor) isFrozen() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frozen != nil
}

// sendCtx hands ev to the loop; nil as well if the loop has ended.
func (c *container) sendCtx(ctx context.Context, ev event) error {
	select {
	case c.events <- ev:
	case <-c.done:
	case <-ctx.Done():
		return fmt.Errorf("supervisor: freeze %s: %w", c.spec.Name, ctx.Err())
	}
	return nil
}

// frozen waits for the loop's answer to req.
func (c *container) frozen(ctx context.Context, req *freezeRequest) (frozenPart, error) {
	select {
	case p := <-req.reply:
		return p, nil
	case <-c.done:
		select {
		case p := <-req.reply:
			return p, nil
		default:
			return frozenPart{removed: true}, nil
		}
	case <-ctx.Done():
		return frozenPart{}, fmt.Errorf("supervisor: freeze %s: %w", c.spec.Name, ctx.Err())
	}
}

func (fc *FrozenContainer) renumber(off int) {
	if fc.Run != nil && fc.Run.ReadyFile >= 0 {
		fc.Run.ReadyFile += off
	}
	for i := range fc.Logs {
		fc.Logs[i].File += off
	}
}

// tryFreeze freezes the container once it is at a safe point, then
// waits for the thaw. It runs on the loop after each step while a
// freeze is pending.
func (c *container) tryFreeze() {
	for !c.removed {
		if c.run != nil && !c.run.statusDone {
			return // the status is on its way: a later step
		}
		ev, ok := c.decided()
		if !ok {
			break
		}
		c.handle(func() { c.dispatch(ev) }, nil)
	}
	req := c.freezing
	c.freezing = nil
	if c.removed {
		req.reply <- frozenPart{removed: true}
		return
	}
	req.reply <- c.describe()
	<-req.thaw
	c.thaw()
	c.publish()
}

// decided stops the readiness wait and returns what was decided before
// the freeze and not yet handled: a readiness verdict, or an exit.
func (c *container) decided() (event, bool) {
	r := c.run
	if r == nil {
		return event{}, false
	}
	if w := r.watch; w != nil {
		w.cancel()
		<-w.done
		select {
		case err := <-w.result:
			return readyEvent(r.gen, err), true
		default:
		}
	}
	select {
	case ws := <-r.exit:
		return event{kind: kExited, gen: r.gen, status: ws}, true
	default:
	}
	return event{}, false
}

// describe pauses the copiers and describes the container.
func (c *container) describe() frozenPart {
	var p frozenPart
	fc := &p.fc
	fc.Spec, p.err = freezeSpec(c.spec)
	if c.pending != nil {
		ps, err := freezeSpec(*c.pending)
		fc.Pending, p.err = &ps, cmp.Or(p.err, err)
	}
	fc.State, fc.Error, fc.History, fc.Gen = c.state, c.errMsg, c.hist.Clone(), c.gen
	fc.Next, fc.NodeDelay = c.next, c.nodeDelay
	if c.state == Stopping {
		fc.After, fc.KillAt = afterNames[c.after], c.timerAt
	}
	add := func(f *os.File) int { p.files = append(p.files, f); return len(p.files) - 1 }
	if r := c.run; r != nil {
		fc.Run = &FrozenRun{PID: r.pid, Gen: r.gen, Started: r.started, Cgroup: r.cgName, OOMBefore: r.oomBefore,
			Setup: r.setup, Attach: r.attach, ReadyFile: -1}
		if w := r.watch; w != nil && c.state == Starting {
			fc.Run.ReadyDeadline = w.deadline
			if w.file != nil {
				fc.Run.ReadyFile = add(w.file)
			}
		}
	}
	paused := c.copiers[:0]
	for _, cp := range c.copiers {
		if cp.pause() {
			paused = append(paused, cp)
			fc.Logs = append(fc.Logs, FrozenLog{Stream: cp.lc.stream, File: add(cp.r), Partial: bytes.Clone(cp.lc.part), Split: cp.lc.split})
		}
	}
	c.copiers = paused
	return p
}

// thaw resumes what describe paused.
func (c *container) thaw() {
	paused := c.copiers
	c.copiers = nil
	for _, cp := range paused {
		c.copyLog(pollable(cp.r), cp.lc)
	}
	if r := c.run; r != nil && r.watch != nil && c.state == Starting {
		w := r.watch
		r.watch = nil
		c.watchReady(w.deadline, pollableOrNil(w.file))
	}
}

func freezeSpec(s Spec) (FrozenSpec, error) {
	fs := FrozenSpec{Spec: s}
	fs.Ready = nil
	switch p := s.Ready.(type) {
	case nil:
	case TCPProbe:
		fs.ReadyTCP = p.Addr
	case HTTPProbe:
		fs.ReadyHTTP = p.URL
	default:
		return fs, fmt.Errorf("%w: %s: readiness probe %T cannot be described", ErrHandover, s.Name, p)
	}
	return fs, nil
}

func (fs FrozenSpec) spec() Spec {
	s := fs.Spec
	switch {
	case fs.ReadyTCP != "":
		s.Ready = TCPProbe{Addr: fs.ReadyTCP}
	case fs.ReadyHTTP != "":
		s.Ready = HTTPProbe{URL: fs.ReadyHTTP}
	}
	return s
}

// pollable returns f in the runtime's poller, where read deadlines
// work (a freeze stops a copier with one): a file whose Fd was taken
// (which makes it blocking), or made by os.NewFile from a blocking
// descriptor, is replaced by a non-blocking duplicate.
func pollable(f *os.File) *os.File {
	if err := f.SetReadDeadline(time.Time{}); !errors.Is(err, os.ErrNoDeadline) {
		return f
	}
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return f // it still works; only a later freeze of it would wait
	}
	unix.SetNonblock(fd, true)
	nf := os.NewFile(uintptr(fd), f.Name())
	f.Close()
	return nf
}

func pollableOrNil(f *os.File) *os.File {
	if f == nil {
		return nil
	}
	return pollable(f)
}

// Adopt puts the containers of a frozen Supervisor (Freeze, in the old
// init) under this one's supervision, as they were: the same runs (the
// Starter must be a child.Adopter: it waits for their pids), state,
// restart history, timers at their deadlines, readiness waits, cgroups
// (UseCgroups first) and logs, which go on from the handed-over pipes
// after the partial lines. This Supervisor has the old one's Options.
//
// A description that does not fit (a name already here, a bad spec or
// index) is ErrHandover, and nothing is adopted. Otherwise the files
// the description names belong to this Supervisor, every container is
// added, and the error joins what went wrong for some: a run whose pid
// cannot be adopted is a run lost, which ends with exit 255 under the
// restart policy.
func (s *Supervisor) Adopt(f Frozen, files []*os.File) error {
	ad, ok := s.opts.Starter.(child.Adopter)
	if !ok {
		return fmt.Errorf("%w: the Starter (%T) cannot adopt children", ErrHandover, s.opts.Starter)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.frozen != nil {
		return ErrFrozen
	}
	if err := s.checkFrozen(f, files); err != nil {
		return err
	}
	var errs []error
	for _, fc := range f.Containers {
		c, err := s.adopt(fc, files, ad)
		errs = append(errs, err)
		s.containers[c.spec.Name] = c
		safe.Go(s.opts.Log, "supervisor: "+c.spec.Name, func() { c.loop(false) })
	}
	return errors.Join(errs...)
}

// checkFrozen checks a description against the files and the
// containers here; s.mu is held.
func (s *Supervisor) checkFrozen(f Frozen, files []*os.File) error {
	used := map[int]bool{}
	file := func(name string, i int) error {
		if i < 0 || i >= len(files) || files[i] == nil || used[i] {
			return fmt.Errorf("%w: %s: file %d: not one of the %d handed over, or named twice", ErrHandover, name, i, len(files))
		}
		used[i] = true
		return nil
	}
	names := map[string]bool{}
	for _, fc := range f.Containers {
		name := fc.Spec.Name
		if err := fc.Spec.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrHandover, err)
		}
		if _, ok := s.containers[name]; ok || names[name] {
			return fmt.Errorf("%w: %w: %s", ErrHandover, ErrExists, name)
		}
		names[name] = true
		live := fc.State == Starting || fc.State == Running || fc.State == Stopping
		switch {
		case fc.State >= nStates:
			return fmt.Errorf("%w: %s: state %v", ErrHandover, name, fc.State)
		case live != (fc.Run != nil):
			return fmt.Errorf("%w: %s: state %v with a run: %v", ErrHandover, name, fc.State, fc.Run != nil)
		case fc.Run != nil && fc.Run.PID <= 1:
			return fmt.Errorf("%w: %s: pid %d", ErrHandover, name, fc.Run.PID)
		}
		if fc.Run != nil && fc.Run.ReadyFile >= 0 {
			if err := file(name, fc.Run.ReadyFile); err != nil {
				return err
			}
		}
		for _, l := range fc.Logs {
			if err := file(name, l.File); err != nil {
				return err
			}
		}
	}
	return nil
}

// adopt makes one container from its description.
func (s *Supervisor) adopt(fc FrozenContainer, files []*os.File, ad child.Adopter) (*container, error) {
	c := newContainer(s, fc.Spec.spec(), fc.History.Clone())
	if fc.Pending != nil {
		ps := fc.Pending.spec()
		c.pending = &ps
	}
	c.state, c.errMsg, c.gen, c.nodeDelay = fc.State, fc.Error, fc.Gen, fc.NodeDelay
	for a, n := range afterNames {
		if n == fc.After {
			c.after = a
		}
	}
	if len(fc.Logs) > 0 {
		c.logs = c.adoptLogs()
	}
	for _, l := range fc.Logs {
		c.copyLog(pollable(files[l.File]), lineCopier{stream: l.Stream, w: c.logs, part: l.Partial, split: l.Split})
	}
	var err error
	if fr := fc.Run; fr != nil {
		err = c.adoptRun(fr, files, ad)
	}
	switch c.state {
	case Backoff, Crashloop:
		c.arm(time.Until(fc.Next))
		c.next = fc.Next
	case Stopping:
		c.arm(time.Until(fc.KillAt))
	}
	c.publish()
	return c, err
}

// adoptLogs opens the log for the handed-over streams. Where it cannot,
// their lines are dropped and counted: the pipes must still be drained.
func (c *container) adoptLogs() *logWriter {
	lw, err := openLog(c.spec.LogDir, c.sup.opts.Logs)
	if err != nil {
		c.errMsg = err.Error() + "; output discarded"
		return &logWriter{dir: c.spec.LogDir, lim: c.sup.opts.Logs.withDefaults(), closed: true}
	}
	return lw
}

// adoptRun waits for the run's pid again. A pid that cannot be adopted
// is a run lost: its exit is delivered as 255.
func (c *container) adoptRun(fr *FrozenRun, files []*os.File, ad child.Adopter) error {
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{pid: fr.PID, gen: fr.Gen, started: fr.Started, ctx: ctx, cancel: cancel, cgName: fr.Cgroup,
		oomBefore: fr.OOMBefore, statusDone: true, setup: fr.Setup, attach: fr.Attach}
	c.run = r
	var errs []error
	if fr.Cgroup != "" {
		if h := c.sup.hierarchy(); h != nil {
			r.cg = h.Group(fr.Cgroup)
		} else {
			errs = append(errs, fmt.Errorf("supervisor: %s: run in cgroup %s, and no cgroups here (UseCgroups before Adopt)", c.spec.Name, fr.Cgroup))
		}
	}
	ch, err := ad.Adopt(fr.PID)
	if err != nil {
		err = fmt.Errorf("supervisor: %s: adopt pid %d: %w; its exit is lost, counted as 255", c.spec.Name, fr.PID, err)
		c.errMsg = err.Error()
		lost := make(chan unix.WaitStatus, 1)
		lost <- unix.WaitStatus(255 << 8)
		ch = lost
		errs = append(errs, err)
	}
	r.exit = ch
	if c.state == Stopping {
		cancel()
	}
	if !fr.ReadyDeadline.IsZero() && c.state == Starting {
		var rf *os.File
		if fr.ReadyFile >= 0 {
			rf = pollable(files[fr.ReadyFile])
		}
		c.watchReady(fr.ReadyDeadline, rf)
	}
	return errors.Join(errs...)
}
