package supervisor

import (
	"errors"
	"fmt"
	"io/fs"
	"runtime/debug"
	"sync/atomic"
	"time"

	"allium/supervisor/restart"

	"golang.org/x/sys/unix"

	"allium/internal/safe"
)

// A container is supervised by one goroutine, its loop, which alone
// reads and writes its fields (except status, published for readers).
// Everything that happens reaches the loop as an event on one channel:
// operator requests, a run's exit, a timer, a probe's verdict. The loop
// looks the action up in a table of state × event, as s6-supervise does;
// an empty cell ignores the event.

// kind is an event's kind: a column of the table.
type kind uint8

const (
	kStart    kind = iota // operator start
	kStop                 // operator stop (reply when down)
	kRestart              // operator restart
	kRemove               // operator remove (reply when gone)
	kReplace              // new spec: stop, swap, start (reply when started)
	kStatus               // the run's status pipe ended: the exec, or the shim's failure
	kExited               // the run's process exited
	kTimer                // the backoff, crashloop or stop timer fired
	kReady                // the readiness probe passed
	kNotReady             // the readiness probe gave up
	kSignal               // operator signal to the workload's group (reply when sent)
	kFreeze               // Supervisor.Freeze (handover.go); outside the table
	nKinds
)

// event is one message to the loop.
type event struct {
	kind   kind
	gen    uint64          // kStatus, kExited, kReady, kNotReady: the run; kTimer: the timer
	status unix.WaitStatus // kExited
	setup  string          // kStatus: the shim's message if it failed before exec
	attach string          // kStatus: why the run's network could not be attached
	err    error           // kNotReady
	spec   *Spec           // kReplace
	sig    unix.Signal     // kSignal
	reply  chan error      // kStop, kRemove, kReplace, kSignal
	freeze *freezeRequest  // kFreeze
}

type action func(c *container, ev event)

// transitions is the state machine. Rows are states, columns events.
//
//	a run starts in starting; status (the shim became the workload)
//	  makes it running, or starts its readiness wait, and ready makes
//	  it running; a status with the shim's failure waits for the exit;
//	stop, restart, remove, replace of a live run: signal the group and
//	  go to stopping with what to do once it is down (c.after);
//	the same in stopping: change c.after (a remove stays a remove);
//	exited of a live run: apply the policy (backoff, crashloop, exited)
//	  or, when the shim failed before exec, failed;
//	exited in stopping: do c.after (stopped, start, remove, policy);
//	timer in backoff/crashloop: start; in stopping: SIGKILL the group.
var transitions = [nStates][nKinds]action{
	// columns: start, stop, restart, remove, replace, status, exited, timer, ready, notReady, signal
	Starting:  {startLive, stopRun, restartRun, removeRun, replaceRun, statusRun, exitedRun, ignore, readyRun, notReadyRun, signalRun},
	Running:   {startLive, stopRun, restartRun, removeRun, replaceRun, ignore, exitedRun, ignore, ignore, ignore, signalRun},
	Stopping:  {queueStart, queueStop, queueStart, queueRemove, queueReplace, noteStatus, stoppedRun, escalate, ignore, ignore},
	Backoff:   {startNow, halt, startNow, removeNow, replaceNow, ignore, ignore, retry, ignore, ignore},
	Crashloop: {startNow, halt, startNow, removeNow, replaceNow, ignore, ignore, retry, ignore, ignore},
	Stopped:   {startNow, halt, startNow, removeNow, replaceNow, ignore, ignore, ignore, ignore, ignore},
	Exited:    {startNow, halt, startNow, removeNow, replaceNow, ignore, ignore, ignore, ignore, ignore},
	Failed:    {startNow, halt, startNow, removeNow, replaceNow, ignore, ignore, ignore, ignore, ignore},
}

// ignore is the empty cell: the event changes nothing (a stale or
// meaningless one).
var ignore action

// afterStop is what stopping leads to once the run is down.
type afterStop uint8

const (
	thenStop   afterStop = iota // stopped (operator stop)
	thenStart                   // start again (restart, replace, start)
	thenRemove                  // removed
	thenPolicy                  // the restart policy (not ready in time)
)

type container struct {
	sup    *Supervisor
	events chan event
	done   chan struct{} // closed when the loop has ended (removed)
	status atomic.Pointer[Status]

	spec    Spec
	pending *Spec // kReplace's spec, swapped in once the old run is down
	hist    restart.History
	state   State
	errMsg  string
	logs    *logWriter

	run      *run   // the live run; nil when none
	gen      uint64 // of the latest run
	timer    *time.Timer
	timerGen uint64
	timerAt  time.Time // when the timer fires
	next     time.Time // of a scheduled restart

	copiers  []*copier      // the log copiers, of this run and of ended ones still draining
	freezing *freezeRequest // a Freeze waiting for a safe point (handover.go)

	nodeDelay time.Duration // the last retry's delay after the node's failure (nodeFailure); 0 after a start

	after   afterStop
	waiters []waiter
	removed bool
}

type waiter struct {
	reply   chan error
	replace bool
}

func newContainer(s *Supervisor, spec Spec, hist restart.History) *container {
	c := &container{sup: s, events: make(chan event, 16), done: make(chan struct{}), spec: spec, hist: hist}
	c.publish()
	return c
}

// send hands ev to the loop; false if the loop has ended.
func (c *container) send(ev event) bool {
	select {
	case c.events <- ev:
		return true
	case <-c.done:
		return false
	}
}

func (c *container) loop(start bool) {
	defer close(c.done)
	if start {
		c.handle(func() { c.spawn() }, nil)
	}
	for !c.removed {
		select {
		case ev := <-c.events:
			c.handle(func() { c.dispatch(ev) }, ev.reply)
		case ws := <-c.exitCh():
			ev := event{kind: kExited, gen: c.run.gen, status: ws}
			c.handle(func() { c.dispatch(ev) }, nil)
		case err := <-c.readyCh():
			ev := readyEvent(c.run.gen, err)
			c.handle(func() { c.dispatch(ev) }, nil)
		}
		if c.freezing != nil {
			c.tryFreeze()
		}
	}
}

// exitCh is the live run's wait status, once its status pipe has
// ended (the exit of a shim that failed is its failure's), else nil.
func (c *container) exitCh() <-chan unix.WaitStatus {
	if c.run == nil || !c.run.statusDone {
		return nil
	}
	return c.run.exit
}

// readyCh is the live run's readiness verdict, while one is awaited.
func (c *container) readyCh() <-chan error {
	if c.run == nil || c.run.watch == nil {
		return nil
	}
	return c.run.watch.result
}

func readyEvent(gen uint64, err error) event {
	if err == nil {
		return event{kind: kReady, gen: gen}
	}
	return event{kind: kNotReady, gen: gen, err: err}
}

// handle runs one step of the loop. A panic costs the event, not the
// loop: it is logged and reported, and the container goes on.
func (c *container) handle(step func(), reply chan error) {
	defer c.publish()
	defer func() {
		if v := recover(); v != nil {
			c.sup.opts.Log.Error("recovered a panic", "in", "supervisor: "+c.spec.Name, "panic", v, "stack", string(debug.Stack()))
			c.emit(Event{Type: EventError, Message: fmt.Sprintf("internal error: %v", v)})
			if reply != nil {
				select { // unless the step replied before it panicked
				case reply <- fmt.Errorf("supervisor: %s: internal error: %v", c.spec.Name, v):
				default:
				}
			}
		}
	}()
	step()
}

func (c *container) dispatch(ev event) {
	if ev.kind == kFreeze {
		c.freezing = ev.freeze
		return
	}
	if c.stale(ev) {
		return
	}
	switch a := transitions[c.state][ev.kind]; {
	case a != nil:
		a(c, ev)
	case ev.kind == kSignal:
		ev.reply <- fmt.Errorf("%w: %s is %s", ErrNotRunning, c.spec.Name, c.state)
	case ev.reply != nil:
		ev.reply <- nil
	}
}

// stale reports an event about an earlier run or a cancelled timer.
func (c *container) stale(ev event) bool {
	switch ev.kind {
	case kStatus, kExited, kReady, kNotReady:
		return c.run == nil || ev.gen != c.gen
	case kTimer:
		return c.timer == nil || ev.gen != c.timerGen
	}
	return false
}

// Actions on a live run.

func stopRun(c *container, ev event)    { c.beginStop(thenStop, ev) }
func restartRun(c *container, ev event) { c.beginStop(thenStart, ev) }
func removeRun(c *container, ev event)  { c.beginStop(thenRemove, ev) }

func replaceRun(c *container, ev event) {
	c.pending = ev.spec
	c.beginStop(thenStart, ev)
}

// signalRun sends the operator's signal to the run's process group. The
// exit it may cause is the workload's, and the restart policy applies.
func signalRun(c *container, ev event) {
	err := c.sup.opts.Killer.Kill(-c.run.pid, ev.sig)
	msg := fmt.Sprintf("operator sent %s to process group %d", unix.SignalName(ev.sig), c.run.pid)
	if err != nil {
		msg += ": " + err.Error()
	}
	c.emit(Event{Type: EventSignal, Message: msg, PID: c.run.pid})
	ev.reply <- err
}

// startLive is an operator start of what runs: it clears a crashloop
// (the run may be a crashloop retry) and leaves the run alone.
func startLive(c *container, _ event) { c.hist = c.hist.OperatorStart() }

func exitedRun(c *container, ev event) {
	setup, attach := c.run.setup, c.run.attach
	ex, ran := c.endRun(ev.status)
	if setup != "" {
		c.errMsg = setup
		c.setState(Failed)
		c.emitExit(ex, ran, "failed before the workload ran; not restarting until started again")
		c.emit(Event{Type: EventError, Message: setup})
		return
	}
	if attach != "" { // a failure of the node's, maybe passing: the policy retries
		c.errMsg = attach
		c.emit(Event{Type: EventError, Message: attach})
	}
	c.applyPolicy(ex, ran)
}

// statusRun: the status pipe ended. Without a message the workload
// runs: without a readiness check it is ready now ("ready once
// started"); with one, the wait begins. With one, the shim failed, and
// its exit follows.
func statusRun(c *container, ev event) {
	noteStatus(c, ev)
	if ev.setup != "" || ev.attach != "" {
		return
	}
	if c.spec.Ready == nil && c.spec.ReadyFD == 0 {
		c.setState(Running)
		c.emit(Event{Type: EventReady, Message: "running (no readiness check)", PID: c.run.pid})
		return
	}
	c.watchReady(time.Now().Add(c.spec.readyTimeout()), c.run.readyR)
	c.run.readyR = nil // the watch's now
}

// noteStatus records how the status pipe ended; from now on the run's
// exit is awaited.
func noteStatus(c *container, ev event) {
	c.run.statusDone, c.run.setup, c.run.attach = true, ev.setup, ev.attach
}

func readyRun(c *container, _ event) {
	c.run.endWatch()
	c.setState(Running)
	c.emit(Event{Type: EventReady, Message: "ready", PID: c.run.pid})
}

func notReadyRun(c *container, ev event) {
	c.run.endWatch()
	c.errMsg = ev.err.Error()
	c.emit(Event{Type: EventError, Message: c.errMsg})
	c.beginStop(thenPolicy, ev)
}

// Actions while stopping: the latest request wins, but a remove stays.

func queueStart(c *container, ev event)  { c.queue(thenStart, ev) }
func queueStop(c *container, ev event)   { c.queue(thenStop, ev) }
func queueRemove(c *container, ev event) { c.queue(thenRemove, ev) }

func queueReplace(c *container, ev event) {
	c.pending = ev.spec
	c.queue(thenStart, ev)
}

func stoppedRun(c *container, ev event) {
	ex, ran := c.endRun(ev.status)
	c.disarm()
	if c.after != thenPolicy {
		c.setState(Stopped)
	}
	switch c.after {
	case thenStop:
		c.swapPending()
		c.emitExit(ex, ran, "stopped")
	case thenStart:
		c.emitExit(ex, ran, "stopped; starting again")
		c.swapPending()
		c.operatorStart()
	case thenRemove:
		c.emitExit(ex, ran, "stopped; removing")
		c.remove()
	case thenPolicy:
		c.applyPolicy(ex, ran)
	}
	c.replyAll()
}

func escalate(c *container, _ event) {
	c.timer = nil
	msg := fmt.Sprintf("did not stop within %v; sent SIGKILL to process group %d", c.spec.stopTimeout(), c.run.pid)
	if err := c.signal(unix.SIGKILL); err != nil {
		msg += ": " + err.Error()
	}
	c.emit(Event{Type: EventStop, Message: msg, PID: c.run.pid})
}

// Actions when no run is live.

func startNow(c *container, _ event) { c.operatorStart() }
func retry(c *container, _ event)    { c.spawn() }

func halt(c *container, ev event) {
	c.disarm()
	c.setState(Stopped)
	c.emit(Event{Type: EventStop, Message: "stopped"})
	ev.reply <- nil
}

func removeNow(c *container, ev event) {
	c.disarm()
	c.remove()
	ev.reply <- nil
}

func replaceNow(c *container, ev event) {
	c.spec = *ev.spec
	c.operatorStart()
	ev.reply <- nil
}

// Helpers of the actions.

func (c *container) beginStop(then afterStop, ev event) {
	c.queue(then, ev)
	c.run.stopProbe()
	c.setState(Stopping)
	sig, wait := c.spec.stopSignal(), c.spec.stopTimeout()
	msg := fmt.Sprintf("sent %s to process group %d; SIGKILL in %v", unix.SignalName(sig), c.run.pid, wait)
	if err := c.signal(sig); err != nil {
		msg = fmt.Sprintf("%s to process group %d: %v", unix.SignalName(sig), c.run.pid, err)
	}
	c.emit(Event{Type: EventStop, Message: msg, PID: c.run.pid})
	c.arm(wait)
}

func (c *container) queue(then afterStop, ev event) {
	if c.after != thenRemove || c.state != Stopping {
		c.after = then
	}
	if ev.reply != nil {
		c.waiters = append(c.waiters, waiter{reply: ev.reply, replace: ev.kind == kReplace})
	}
}

func (c *container) replyAll() {
	for _, w := range c.waiters {
		if c.removed && w.replace {
			w.reply <- fmt.Errorf("%w: %s", ErrRemoved, c.spec.Name)
		} else {
			w.reply <- nil
		}
	}
	c.waiters = nil
}

func (c *container) swapPending() {
	if c.pending != nil {
		c.spec, c.pending = *c.pending, nil
	}
}

// operatorStart starts afresh: no backoff, no crashloop, no old error.
func (c *container) operatorStart() {
	c.disarm()
	c.hist = c.hist.OperatorStart()
	c.errMsg = ""
	c.spawn()
}

// applyPolicy decides what follows an exit and goes there.
func (c *container) applyPolicy(ex restart.Exit, ran time.Duration) {
	d, h := c.spec.Policy.Decide(c.hist, ran, ex, time.Now(), c.sup.opts.Rand)
	c.hist = h
	switch d.Action {
	case restart.StayDown:
		c.setState(Exited)
		c.emitExit(ex, ran, "not restarting: "+d.Reason)
	case restart.Restart:
		c.schedule(Backoff, d.After)
		c.emitExit(ex, ran, d.Reason)
		c.emit(Event{Type: EventRestart, Message: d.Reason, Delay: d.After})
	case restart.CrashloopRetry:
		c.schedule(Crashloop, d.After)
		c.emitExit(ex, ran, d.Reason)
		c.emit(Event{Type: EventCrashloop, Message: d.Reason, Delay: d.After})
	}
}

func (c *container) schedule(s State, after time.Duration) {
	c.setState(s)
	c.arm(after)
	c.next = time.Now().Add(after)
}

func (c *container) remove() {
	c.setState(Stopped)
	c.removed = true
	if h := c.sup.hierarchy(); h != nil {
		if err := h.Group("containers/" + c.spec.Name).Remove(); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.emit(Event{Type: EventError, Message: err.Error()})
		}
	}
	if c.logs != nil {
		c.logs.close()
	}
	c.sup.forget(c)
	c.emit(Event{Type: EventRemove, Message: "removed"})
}

func (c *container) setState(s State) {
	c.state = s
	if s != Backoff && s != Crashloop {
		c.next = time.Time{}
	}
}

// arm starts the one timer, replacing any; disarm cancels it. A fired
// timer whose generation is not current is stale.
func (c *container) arm(d time.Duration) {
	c.disarm()
	gen := c.timerGen
	c.timerAt = time.Now().Add(d)
	c.timer = time.AfterFunc(d, func() { c.send(event{kind: kTimer, gen: gen}) })
}

func (c *container) disarm() {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.timerGen++
}

func (c *container) emitExit(ex restart.Exit, ran time.Duration, note string) {
	if ex.OOM {
		c.emit(Event{Type: EventOOM, Message: "the kernel's OOM killer ended the run: its memory limit (resources.memory) is too small for it"})
	}
	msg := fmt.Sprintf("%v after %v; %s", ex, ran.Round(time.Millisecond), note)
	c.emit(Event{Type: EventExit, Message: msg, Exit: &ex})
}

// emit completes ev and hands it to OnEvent, recovering its panic. It
// publishes the status first: whoever sees an event finds Status at
// least as new.
func (c *container) emit(ev Event) {
	ev.Time, ev.Container, ev.State, ev.History = time.Now(), c.spec.Name, c.state, c.hist.Clone()
	c.publish()
	if f := c.sup.opts.OnEvent; f != nil {
		safe.Run(c.sup.opts.Log, "supervisor: OnEvent", func() { f(ev) })
	}
}

// publish stores the status that Status and List read.
func (c *container) publish() {
	s := Status{
		Name: c.spec.Name, State: c.state, Restarts: c.hist.Restarts,
		NextRestart: c.next, Error: c.errMsg, LastExit: c.hist.Clone().LastExit,
	}
	if c.run != nil {
		s.PID, s.Started = c.run.pid, c.run.started
	}
	if c.logs != nil {
		s.LogsDropped = c.logs.dropped.Load()
	}
	c.status.Store(&s)
}
