package hiddenservice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/textproto"
	"os/exec"
	"syscall"
	"time"

	"allium/internal/child"
	"allium/supervisor/restart"

	"github.com/cretz/bine/control"
	"golang.org/x/sys/unix"

	"allium/internal/safe"
)

// Timings of the supervisor.
const (
	// connectTimeout bounds the wait for tor's control socket.
	connectTimeout = 30 * time.Second
	// pollInterval is how often a running tor is asked for its
	// bootstrap status, and the latency of UpdateClients.
	pollInterval = time.Second
	// stopGrace is how long tor gets to exit after SIGTERM.
	stopGrace = 10 * time.Second
)

// phase is a state of the supervision loop. Run is one goroutine that
// executes this table; each step returns the next phase:
//
//	phase     event                                next
//	start     tor started                          connect
//	start     exec failed (missing binary, ...)    backoff
//	connect   control socket open, authenticated   publish (run without a Service)
//	connect   tor exited, or no socket in 30 s     backoff (tor killed if alive)
//	publish   descriptor uploaded                  run
//	publish   upload timed out (tor keeps trying)  run
//	publish   tor refused the onion                run (shown in Status; retried on UpdateClients)
//	publish   tor exited, control connection lost  backoff
//	run       UpdateClients                        publish
//	run       tor exited, control connection lost  backoff
//	backoff   delay elapsed                        start
//	any       Run's context done                   done (SIGTERM, then SIGKILL after 10 s)
type phase int

const (
	phaseStart phase = iota
	phaseConnect
	phasePublish
	phaseRun
	phaseBackoff
	phaseDone
)

var phaseStates = [...]State{StateStarting, StateConnecting, StatePublishing, StateRunning, StateBackoff, StateStopped}

// machine is Run's state, owned by Run's goroutine alone.
type machine struct {
	p    *Process
	ctx  context.Context
	log  *slog.Logger
	tor  *torRun // the current tor, or nil
	hist restart.History
	ran  time.Duration // how long the last tor ran
	exit restart.Exit  // how it ended
}

// torRun is one tor process.
type torRun struct {
	cmd     *exec.Cmd
	started time.Time
	ctx     context.Context // done when tor exits or Run's context ends
	cancel  context.CancelFunc
	exited  chan struct{} // closed once status is set
	status  unix.WaitStatus
	ctl     *Controller
}

// Run supervises tor until ctx is done, then stops it. It returns
// ctx's error, or an error at once if it is already running. PID 1
// calls it on a goroutine that recovers panics.
func (p *Process) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("hiddenservice: Process.Run is already running")
	}
	defer p.running.Store(false)
	m := &machine{p: p, ctx: ctx, log: p.opts.Log}
	defer m.stopTor()
	for ph := phaseStart; ph != phaseDone; {
		p.setState(phaseStates[ph])
		ph = m.step(ph)
	}
	p.setState(StateStopped)
	return ctx.Err()
}

func (m *machine) step(ph phase) phase {
	if m.ctx.Err() != nil {
		return phaseDone
	}
	switch ph {
	case phaseStart:
		return m.start()
	case phaseConnect:
		return m.connect()
	case phasePublish:
		return m.publish()
	case phaseRun:
		return m.watch()
	case phaseBackoff:
		return m.backoff()
	}
	return phaseDone
}

func (m *machine) start() phase {
	if err := m.p.Prepare(); err != nil {
		return m.failed(err)
	}
	cmd := m.p.Command()
	ch, err := child.Start(m.p.opts.Starter, cmd)
	if err != nil {
		return m.failed(startError(cmd.Path, err))
	}
	m.tor = newTorRun(m.ctx, cmd, ch, m.log)
	m.p.update(func(s *Status) {
		s.PID, s.Starts, s.Bootstrap, s.Published, s.ClockSkew = cmd.Process.Pid, s.Starts+1, 0, false, ""
	})
	m.log.Info("tor started", "pid", cmd.Process.Pid)
	return phaseConnect
}

func newTorRun(ctx context.Context, cmd *exec.Cmd, ch <-chan unix.WaitStatus, log *slog.Logger) *torRun {
	t := &torRun{cmd: cmd, started: time.Now(), exited: make(chan struct{})}
	t.ctx, t.cancel = context.WithCancel(ctx)
	safe.Go(log, "tor exit waiter", func() {
		defer t.cancel()
		if ws, ok := <-ch; ok {
			t.status = ws
		}
		close(t.exited)
	})
	return t
}

func (m *machine) connect() phase {
	ctx, cancel := context.WithTimeout(m.tor.ctx, connectTimeout)
	defer cancel()
	ctl, err := dialRetry(ctx, m.p.opts.Config.controlSocket())
	if err == nil {
		m.tor.ctl = ctl // stopTor closes it
		ctl.Observer = m.observe
		err = ctl.EnableEvents(ctx, control.EventCodeStatusClient, control.EventCodeStatusGeneral)
	}
	if err != nil {
		return m.lost(err)
	}
	if m.p.opts.Service == nil {
		return phaseRun
	}
	return phasePublish
}

// dialRetry dials the control socket until it opens (tor opens it a
// moment after it starts, later still when it switches user).
func dialRetry(ctx context.Context, path string) (*Controller, error) {
	for {
		c, err := Dial(ctx, "unix", path)
		if err == nil || ctx.Err() != nil {
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (m *machine) publish() phase {
	svc := m.p.opts.Service
	m.p.update(func(s *Status) { s.Published = false })
	var err error
	if clients := m.p.takeClients(); clients != nil {
		err = svc.Update(m.tor.ctx, m.tor.ctl, clients)
	} else {
		err = svc.Publish(m.tor.ctx, m.tor.ctl)
	}
	var te *textproto.Error
	switch {
	case err == nil, errors.Is(err, ErrUploadTimeout):
		m.setError(err) // the Observer marks it published if it uploads later
		return phaseRun
	case errors.As(err, &te), errors.Is(err, ErrNoClients):
		m.setError(err)
		m.log.Error("tor refused the onion", "err", err)
		return phaseRun
	}
	return m.lost(err)
}

// watch follows a running tor: its events, its bootstrap status, and
// client updates.
func (m *machine) watch() phase {
	for {
		if m.tor.ctx.Err() != nil {
			return m.lost(nil)
		}
		if m.p.opts.Service != nil && m.p.hasClients() {
			return phasePublish
		}
		if err := m.poll(); err != nil {
			return m.lost(err)
		}
	}
}

// poll asks tor for its bootstrap status, then reads events for
// pollInterval.
func (m *machine) poll() error {
	b, err := m.tor.ctl.Bootstrap(m.tor.ctx)
	if err != nil {
		return err
	}
	m.bootstrapped(b)
	ctx, cancel := context.WithTimeout(m.tor.ctx, pollInterval)
	defer cancel()
	for {
		if _, err := m.tor.ctl.NextEvent(ctx); err != nil {
			if errors.Is(err, context.DeadlineExceeded) && m.tor.ctx.Err() == nil {
				return nil // the interval is over; the connection is fine
			}
			return err
		}
	}
}

// observe updates the status from an event; the Controller calls it.
func (m *machine) observe(ev control.Event) {
	switch e := ev.(type) {
	case *control.HSDescEvent:
		if svc := m.p.opts.Service; svc != nil && e.Action == "UPLOADED" && e.Address == ID(svc.Address()) {
			m.p.update(func(s *Status) { s.Published, s.PublishedAt, s.LastError = true, time.Now(), "" })
		}
	case *control.StatusEvent:
		_, action, args, err := parseStatusLine(e.Raw)
		if err != nil {
			return
		}
		if skew := clockSkew(action, args); skew != "" {
			m.log.Warn("tor reports clock skew", "skew", skew)
			m.p.update(func(s *Status) { s.ClockSkew = skew })
		}
		if b, err := ParseBootstrap(e.Raw); err == nil {
			m.bootstrapped(b)
		}
	}
}

func (m *machine) bootstrapped(b Bootstrap) {
	m.p.update(func(s *Status) {
		if b.Progress != s.Bootstrap {
			m.log.Info("tor bootstrap", "progress", b.Progress, "phase", b.Summary)
		}
		s.Bootstrap, s.BootstrapSummary = b.Progress, b.Summary
		if b.Reason == "CLOCK_SKEW" {
			s.ClockSkew = "tor: " + b.Warning + ": check the node's clock"
		}
		if b.Warning != "" && b.Progress < 100 {
			s.LastError = fmt.Sprintf("tor is stuck at %d%% (%s): %s", b.Progress, b.Summary, b.Warning)
		}
	})
}

func (p *Process) hasClients() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.clients != nil
}

// lost ends the current tor after a failure (err may be nil when tor
// simply exited): tor is killed if it still runs.
func (m *machine) lost(err error) phase {
	if m.ctx.Err() != nil {
		return phaseDone
	}
	// A tor that dies closes its control socket a moment before the
	// reaper reports its exit: give the report a second to arrive.
	if err != nil && !m.tor.wait(time.Second) {
		m.log.Error("tor lost its supervisor's control: restarting it", "err", err)
		m.setError(err)
	}
	m.stopTor()
	return phaseBackoff
}

// failed records a failure to start tor.
func (m *machine) failed(err error) phase {
	m.log.Error("tor did not start", "err", err)
	m.setError(err)
	m.ran, m.exit = 0, restart.Exit{Code: exitCannotStart, Time: time.Now()}
	return phaseBackoff
}

func (m *machine) setError(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	m.p.update(func(s *Status) { s.LastError = msg })
}

// exitCannotStart is the exit a failed start counts as, as the
// supervisor counts a shim that cannot start.
const exitCannotStart = 126

// backoff asks the restart policy when to start tor again, and waits.
func (m *machine) backoff() phase {
	var d restart.Decision
	d, m.hist = m.p.opts.Policy.Decide(m.hist, m.ran, m.exit, time.Now(), nil)
	if d.Action == restart.StayDown {
		// Exit 125 (or a policy that says never): tor is the node's way
		// in, so it is not left down.
		d.After = m.p.opts.Policy.MaxDelay
	}
	m.p.update(func(s *Status) { s.NextStart = time.Now().Add(d.After) })
	if d.Action == restart.CrashloopRetry {
		m.p.setState(StateCrashLoop)
		m.log.Error("tor keeps failing", "failures", len(m.hist.Failures), "next start in", d.After)
	}
	t := time.NewTimer(d.After)
	defer t.Stop()
	select {
	case <-m.ctx.Done():
		return phaseDone
	case <-t.C:
		return phaseStart
	}
}

// stopTor ends the current tor, if any: SIGTERM, SIGKILL after
// stopGrace, and waits for the reaper to report the exit.
func (m *machine) stopTor() {
	t := m.tor
	if t == nil {
		return
	}
	m.tor = nil
	if t.ctl != nil {
		t.ctl.Close()
	}
	exited := t.wait(0)
	if !exited {
		t.cmd.Process.Signal(syscall.SIGTERM)
		if exited = t.wait(stopGrace); !exited {
			t.cmd.Process.Signal(syscall.SIGKILL)
			exited = t.wait(stopGrace)
		}
	}
	t.cancel()
	m.ran = time.Since(t.started)
	exit := "no exit status after SIGKILL"
	m.exit = restart.Exit{Code: 128 + int(unix.SIGKILL), Signal: "SIGKILL", Time: time.Now()}
	if exited {
		m.exit = restart.ExitFrom(t.status, time.Now()) // set before exited was closed
		exit = m.exit.String()
	}
	m.log.Info("tor exited", "pid", t.cmd.Process.Pid, "status", exit, "ran", m.ran.Round(time.Millisecond))
	m.p.update(func(s *Status) { s.PID, s.LastExit, s.Bootstrap, s.Published = 0, exit, 0, false })
}

// wait reports whether tor exited within d.
func (t *torRun) wait(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-t.exited:
		return true
	case <-timer.C:
		return false
	}
}
