package hiddenservice

import (
	"time"

	"allium/supervisor/restart"
)

// TorPolicy is tor's restart policy: the containers' policy
// (restart.Policy) with tor's own parameters. tor is the node's way in
// when it has no public address, so it waits at most a minute between
// starts, even in a crash loop (5 failures within 10 min), and without
// jitter (there is one tor per node; nothing to spread).
var TorPolicy = restart.Policy{
	MaxDelay:       time.Minute,
	Burst:          5,
	CrashloopRetry: time.Minute,
	Jitter:         -1,
}

// torPolicy fills p's zero fields with TorPolicy's, so that a caller
// sets only what it changes (a test's short Delay).
func torPolicy(p restart.Policy) restart.Policy {
	def := TorPolicy
	set := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	set(&p.Delay, def.Delay)
	set(&p.MaxDelay, def.MaxDelay)
	set(&p.ResetAfter, def.ResetAfter)
	set(&p.Window, def.Window)
	set(&p.CrashloopRetry, def.CrashloopRetry)
	if p.Burst == 0 {
		p.Burst = def.Burst
	}
	if p.Jitter == 0 {
		p.Jitter = def.Jitter
	}
	p.Mode = "" // always
	return p
}
