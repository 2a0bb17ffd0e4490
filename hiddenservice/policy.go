package hiddenservice

import "time"

// Backoff is the policy for restarting tor. Every field's zero value
// is the default, so Backoff{} waits 1 s after a failure, doubling up
// to 1 min, starts afresh after a run of 60 s, and reports a crash loop
// after 5 failures within 10 min. It never gives up: tor is the node's
// way in when it has no public address.
type Backoff struct {
	// Delay is the first delay; 0 means 1 s.
	Delay time.Duration
	// MaxDelay caps the doubling; 0 means 1 min.
	MaxDelay time.Duration
	// ResetAfter is how long tor must run for its exit to start the
	// backoff afresh; 0 means 60 s.
	ResetAfter time.Duration
	// Burst failures within Window are a crash loop; 0 means 5.
	Burst int
	// Window is the crash-loop window; 0 means 10 min.
	Window time.Duration
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Next is the delay before the next start, after a failure that ended
// a run of length ran; prev is the delay used before that run (0 for
// none).
func (b Backoff) Next(prev, ran time.Duration) time.Duration {
	first, ceiling := or(b.Delay, time.Second), or(b.MaxDelay, time.Minute)
	if prev == 0 || ran >= or(b.ResetAfter, 60*time.Second) {
		return min(first, ceiling)
	}
	return min(2*prev, ceiling)
}

// Failed records a failure at now in the recent failures and reports
// whether they now make a crash loop. Failures older than Window are
// dropped.
func (b Backoff) Failed(recent []time.Time, now time.Time) ([]time.Time, bool) {
	window := or(b.Window, 10*time.Minute)
	kept := recent[:0]
	for _, t := range recent {
		if now.Sub(t) < window {
			kept = append(kept, t)
		}
	}
	kept = append(kept, now)
	return kept, len(kept) >= or(b.Burst, 5)
}
