package restart

import (
	"fmt"
	"slices"
	"time"

	"allium/manifest"
)

// ExitNoRestart is the exit code by which a workload says "do not
// restart me" (as in gokrazy and s6). No policy overrides it.
const ExitNoRestart = 125

// The restart defaults (README, "On the node").
const (
	DefaultDelay          = 1 * time.Second
	DefaultMaxDelay       = 5 * time.Minute
	DefaultResetAfter     = 60 * time.Second
	DefaultJitter         = 0.2
	DefaultBurst          = 10
	DefaultWindow         = 10 * time.Minute
	DefaultCrashloopRetry = 30 * time.Minute
)

// Policy is a container's restart policy. The zero value of every field
// is the default, so Policy{} restarts always, with a delay of
// 1 s doubling to 5 min ±20%, reset after a 60 s run, and a crashloop
// after 10 failures in 10 min that retries every 30 min.
type Policy struct {
	// Mode is manifest.RestartAlways (also ""), RestartOnFailure or
	// RestartNever.
	Mode string `json:"mode,omitempty"`
	// NoRestartCodes are exit codes after which the container stays
	// down. Exit 125 always does.
	NoRestartCodes []int `json:"no_restart_codes,omitempty"`
	// RestartCodes are exit codes that restart whatever Mode says.
	RestartCodes []int `json:"restart_codes,omitempty"`
	// Delay is the first delay; 0 means 1 s.
	Delay time.Duration `json:"delay,omitempty"`
	// MaxDelay caps the doubling; 0 means 5 min.
	MaxDelay time.Duration `json:"max_delay,omitempty"`
	// ResetAfter is how long a run must last for its exit to start the
	// backoff afresh; 0 means 60 s.
	ResetAfter time.Duration `json:"reset_after,omitempty"`
	// Jitter is the relative spread of each delay; 0 means 0.2 (±20%),
	// a negative value means none.
	Jitter float64 `json:"jitter,omitempty"`
	// Burst failures within Window enter crashloop; 0 means 10.
	Burst int `json:"burst,omitempty"`
	// Window is the burst rule's window; 0 means 10 min.
	Window time.Duration `json:"window,omitempty"`
	// CrashloopRetry is the delay between retries in crashloop; 0
	// means 30 min.
	CrashloopRetry time.Duration `json:"crashloop_retry,omitempty"`
}

// PolicyFrom is the Policy a manifest asks for.
func PolicyFrom(r manifest.Restart) Policy {
	return Policy{
		Mode:           r.Policy,
		NoRestartCodes: slices.Clone(r.NoRestartCodes),
		RestartCodes:   slices.Clone(r.RestartCodes),
		Delay:          r.Delay.D,
		MaxDelay:       r.MaxDelay.D,
		ResetAfter:     r.ResetAfter.D,
	}
}

// withDefaults fills in every zero field.
func (p Policy) withDefaults() Policy {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&p.Delay, DefaultDelay)
	def(&p.MaxDelay, DefaultMaxDelay)
	def(&p.ResetAfter, DefaultResetAfter)
	def(&p.Window, DefaultWindow)
	def(&p.CrashloopRetry, DefaultCrashloopRetry)
	if p.MaxDelay < p.Delay {
		p.MaxDelay = p.Delay
	}
	if p.Burst <= 0 {
		p.Burst = DefaultBurst
	}
	switch {
	case p.Jitter == 0:
		p.Jitter = DefaultJitter
	case p.Jitter < 0:
		p.Jitter = 0
	case p.Jitter > 1:
		p.Jitter = 1
	}
	return p
}

// History is what the restart policy remembers of a container. The
// caller persists it (it marshals to JSON) and hands it back to Add after
// a reboot. Its zero value is a container that never failed.
type History struct {
	// Restarts counts restarts scheduled after exits; operator actions
	// do not count.
	Restarts uint64 `json:"restarts"`
	// Delay is the last backoff delay before jitter; 0 means the next
	// restart waits Policy.Delay.
	Delay time.Duration `json:"delay,omitempty"`
	// Failures are the times of recent failures, oldest first, at most
	// Policy.Burst of them and none older than Policy.Window.
	Failures []time.Time `json:"failures,omitempty"`
	// Crashloop is set on entering crashloop and cleared by a healthy
	// run or an operator start.
	Crashloop bool `json:"crashloop,omitempty"`
	// LastExit is how the last run ended; nil if none has.
	LastExit *Exit `json:"last_exit,omitempty"`
}

// OperatorStart is the History after an operator's start or restart:
// the backoff and the burst count start afresh and crashloop is cleared.
// Restarts and LastExit are kept for `cloud ps`.
func (h History) OperatorStart() History {
	return History{Restarts: h.Restarts, LastExit: h.LastExit}
}

// Clone copies h so that a copy handed out shares nothing with it.
func (h History) Clone() History {
	h.Failures = slices.Clone(h.Failures)
	if h.LastExit != nil {
		e := *h.LastExit
		h.LastExit = &e
	}
	return h
}

// Action is what to do after an exit.
type Action uint8

const (
	// StayDown leaves the container down (state exited).
	StayDown Action = iota
	// Restart restarts it after Decision.After (state backoff).
	Restart
	// CrashloopRetry retries after Decision.After (state crashloop).
	CrashloopRetry
)

func (a Action) String() string {
	switch a {
	case StayDown:
		return "stay down"
	case Restart:
		return "restart"
	case CrashloopRetry:
		return "crashloop retry"
	}
	return fmt.Sprintf("action(%d)", a)
}

// Decision is the policy's answer to an exit.
type Decision struct {
	Action Action
	// After is the delay before the restart, jitter included.
	After time.Duration
	// Reason says why, for events and `cloud ps`.
	Reason string
}

// Decide is the restart policy: given the history, how long the run
// lasted, how it ended and the time now, it returns what to do and the
// new history. rnd returns a number in [0, 1) for the jitter; 0.5 means
// none. Decide is pure: it reads no clock and touches nothing.
func (p Policy) Decide(h History, ran time.Duration, ex Exit, now time.Time, rnd func() float64) (Decision, History) {
	p = p.withDefaults()
	h = h.Clone()
	h.LastExit = &ex
	if ok, why := p.wantsRestart(ex); !ok {
		return Decision{Action: StayDown, Reason: why}, h
	}
	if ran >= p.ResetAfter {
		h.Delay, h.Failures, h.Crashloop = 0, nil, false
	}
	h.Failures = p.recent(append(h.Failures, now), now)
	h.Restarts++
	if len(h.Failures) >= p.Burst {
		h.Crashloop = true
	}
	if h.Crashloop {
		why := fmt.Sprintf("crashloop: %d failures within %v; retrying every %v", len(h.Failures), p.Window, p.CrashloopRetry)
		return Decision{Action: CrashloopRetry, After: p.jitter(p.CrashloopRetry, rnd), Reason: why}, h
	}
	h.Delay = min(max(2*h.Delay, p.Delay), p.MaxDelay)
	after := p.jitter(h.Delay, rnd)
	return Decision{Action: Restart, After: after, Reason: fmt.Sprintf("restart in %v", after.Round(time.Millisecond))}, h
}

// wantsRestart applies exit 125, the code lists and the mode, in that
// order. A run killed by a signal matches no code list.
func (p Policy) wantsRestart(ex Exit) (bool, string) {
	exited := ex.Signal == ""
	switch {
	case exited && ex.Code == ExitNoRestart:
		return false, "exit 125: the workload asked not to be restarted"
	case exited && slices.Contains(p.NoRestartCodes, ex.Code):
		return false, fmt.Sprintf("exit %d is in no_restart_codes", ex.Code)
	case exited && slices.Contains(p.RestartCodes, ex.Code):
		return true, ""
	case p.Mode == manifest.RestartNever:
		return false, "restart policy is never"
	case p.Mode == manifest.RestartOnFailure && exited && ex.Code == 0:
		return false, "exit 0 and the restart policy is on-failure"
	}
	return true, ""
}

// recent keeps the failures within the window before now, at most Burst
// of them. Times after now (the clock was set back) are dropped too.
func (p Policy) recent(fs []time.Time, now time.Time) []time.Time {
	fs = slices.DeleteFunc(fs, func(t time.Time) bool {
		return now.Sub(t) >= p.Window || t.After(now)
	})
	if len(fs) > p.Burst {
		fs = fs[len(fs)-p.Burst:]
	}
	return fs
}

// jitter spreads d by ±Jitter: rnd() = 0 gives the shortest delay, 0.5
// gives d.
func (p Policy) jitter(d time.Duration, rnd func() float64) time.Duration {
	if p.Jitter == 0 || rnd == nil {
		return d
	}
	f := 1 + p.Jitter*(2*rnd()-1)
	return time.Duration(float64(d) * f)
}
