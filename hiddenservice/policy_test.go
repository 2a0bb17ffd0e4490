package hiddenservice

import (
	"testing"
	"time"

	"allium/supervisor/restart"
)

// tor's restart policy, through the containers' Decide: delays double
// from 1 s to the 1 min cap, a long run starts afresh, and five failures
// within 10 min are a crash loop that still retries every minute.
func TestTorPolicyDelays(t *testing.T) {
	p := torPolicy(restart.Policy{})
	t0 := time.Unix(1_700_000_000, 0)
	var h restart.History
	var got []time.Duration
	for i := range 9 {
		var d restart.Decision
		d, h = p.Decide(h, time.Second, restart.Exit{Code: 1}, t0.Add(time.Duration(i)*time.Hour), nil)
		got = append(got, d.After)
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("tor's delays = %v, want %v seconds", got, want)
		}
	}
	if d, _ := p.Decide(h, 61*time.Second, restart.Exit{Code: 1}, t0.Add(10*time.Hour), nil); d.After != time.Second {
		t.Errorf("after a run of 61 s: delay %s, want 1s (a long run resets the backoff)", d.After)
	}
	custom := torPolicy(restart.Policy{Delay: 10 * time.Millisecond, MaxDelay: 15 * time.Millisecond})
	if d, _ := custom.Decide(restart.History{Delay: 10 * time.Millisecond}, 0, restart.Exit{Code: 1}, t0, nil); d.After != 15*time.Millisecond {
		t.Errorf("custom delay after 10ms = %s, want the 15ms cap", d.After)
	}
}

func TestTorPolicyCrashloop(t *testing.T) {
	p := torPolicy(restart.Policy{})
	t0 := time.Unix(1_700_000_000, 0)
	var h restart.History
	var d restart.Decision
	for i := range 4 {
		if d, h = p.Decide(h, 0, restart.Exit{Code: 1}, t0.Add(time.Duration(i)*time.Minute), nil); d.Action != restart.Restart {
			t.Fatalf("failure %d: %v, want restart (a crash loop takes 5)", i+1, d.Action)
		}
	}
	if d, h = p.Decide(h, 0, restart.Exit{Code: 1}, t0.Add(4*time.Minute), nil); d.Action != restart.CrashloopRetry || d.After != time.Minute {
		t.Fatalf("5 failures in 4 min: %v after %s, want a crash loop retried after 1m", d.Action, d.After)
	}
	// A healthy run ends the crash loop; 11 min later the old failures
	// have left the window anyway.
	if d, h = p.Decide(h, 0, restart.Exit{Code: 1}, t0.Add(15*time.Minute), nil); d.Action == restart.StayDown {
		t.Errorf("tor stays down: %v", d)
	}
	if len(h.Failures) != 1 {
		t.Errorf("failures 11 min later = %d, want 1", len(h.Failures))
	}
}
