package restart

import (
	"encoding/json"
	"reflect"
	"testing"
	"testing/synctest"
	"time"

	"allium/manifest"
)

// half is a random source that makes the jitter vanish.
func half() float64 { return 0.5 }

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func exitCode(code int) Exit          { return Exit{Code: code, Time: t0} }
func killedBy(sig string, n int) Exit { return Exit{Code: 128 + n, Signal: sig, Time: t0} }

// ago is n failure times, one a second, ending a second before t0.
func ago(n int) []time.Time {
	var ts []time.Time
	for i := n; i > 0; i-- {
		ts = append(ts, t0.Add(-time.Duration(i)*time.Second))
	}
	return ts
}

func TestDecide(t *testing.T) {
	always := Policy{}
	tests := []struct {
		name       string
		p          Policy
		h          History
		ran        time.Duration
		ex         Exit
		wantAction Action
		wantAfter  time.Duration
		wantDelay  time.Duration // History.Delay after
		wantFails  int
		wantLoop   bool
	}{
		{"first failure waits the first delay", always, History{}, 0, exitCode(1), Restart, time.Second, time.Second, 1, false},
		{"the delay doubles", always, History{Delay: time.Second, Failures: ago(1)}, 0, exitCode(1), Restart, 2 * time.Second, 2 * time.Second, 2, false},
		{"the delay is capped", always, History{Delay: 4 * time.Minute}, 0, exitCode(1), Restart, 5 * time.Minute, 5 * time.Minute, 1, false},
		{"the cap holds", always, History{Delay: 5 * time.Minute}, 0, exitCode(1), Restart, 5 * time.Minute, 5 * time.Minute, 1, false},
		{"a 60 s run resets the backoff", always, History{Delay: 32 * time.Second, Failures: ago(6)}, 60 * time.Second, exitCode(1), Restart, time.Second, time.Second, 1, false},
		{"a 59 s run does not", always, History{Delay: 32 * time.Second, Failures: ago(6)}, 59 * time.Second, exitCode(1), Restart, 64 * time.Second, 64 * time.Second, 7, false},
		{"exit 0 restarts under always", always, History{}, 0, exitCode(0), Restart, time.Second, time.Second, 1, false},
		{"exit 125 stays down", always, History{Delay: time.Second}, 0, exitCode(125), StayDown, 0, time.Second, 0, false},
		{"exit 125 beats restart_codes", Policy{RestartCodes: []int{125}}, History{}, 0, exitCode(125), StayDown, 0, 0, 0, false},
		{"no_restart_codes", Policy{NoRestartCodes: []int{3}}, History{}, 0, exitCode(3), StayDown, 0, 0, 0, false},
		{"a code not in no_restart_codes", Policy{NoRestartCodes: []int{3}}, History{}, 0, exitCode(4), Restart, time.Second, time.Second, 1, false},
		{"a signal matches no code list", Policy{NoRestartCodes: []int{137}}, History{}, 0, killedBy("SIGKILL", 9), Restart, time.Second, time.Second, 1, false},
		{"never", Policy{Mode: manifest.RestartNever}, History{}, 0, exitCode(1), StayDown, 0, 0, 0, false},
		{"never, but restart_codes", Policy{Mode: manifest.RestartNever, RestartCodes: []int{1}}, History{}, 0, exitCode(1), Restart, time.Second, time.Second, 1, false},
		{"on-failure, exit 0", Policy{Mode: manifest.RestartOnFailure}, History{}, 0, exitCode(0), StayDown, 0, 0, 0, false},
		{"on-failure, exit 1", Policy{Mode: manifest.RestartOnFailure}, History{}, 0, exitCode(1), Restart, time.Second, time.Second, 1, false},
		{"on-failure, a signal", Policy{Mode: manifest.RestartOnFailure}, History{}, 0, killedBy("SIGSEGV", 11), Restart, time.Second, time.Second, 1, false},
		{"on-failure, exit 0 in restart_codes", Policy{Mode: manifest.RestartOnFailure, RestartCodes: []int{0}}, History{}, 0, exitCode(0), Restart, time.Second, time.Second, 1, false},
		{"the 10th failure in 10 min is a crashloop", always, History{Delay: 256 * time.Second, Failures: ago(9)}, 0, exitCode(1), CrashloopRetry, 30 * time.Minute, 256 * time.Second, 10, true},
		{"failures older than the window do not count", always, History{Delay: 8 * time.Second, Failures: append([]time.Time{t0.Add(-11 * time.Minute)}, ago(8)...)}, 0, exitCode(1), Restart, 16 * time.Second, 16 * time.Second, 9, false},
		{"failures in the future (clock set back) do not count", always, History{Failures: append(ago(8), t0.Add(time.Hour))}, 0, exitCode(1), Restart, time.Second, time.Second, 9, false},
		{"crashloop stays after one failure", always, History{Crashloop: true, Delay: time.Second}, 0, exitCode(1), CrashloopRetry, 30 * time.Minute, time.Second, 1, true},
		{"a healthy run ends a crashloop", always, History{Crashloop: true, Failures: ago(10)}, time.Minute, exitCode(1), Restart, time.Second, time.Second, 1, false},
		{"custom delays", Policy{Delay: 100 * time.Millisecond, MaxDelay: 300 * time.Millisecond}, History{Delay: 200 * time.Millisecond}, 0, exitCode(1), Restart, 300 * time.Millisecond, 300 * time.Millisecond, 1, false},
		{"custom burst", Policy{Burst: 3, Window: time.Minute, CrashloopRetry: time.Hour}, History{Failures: ago(2)}, 0, exitCode(1), CrashloopRetry, time.Hour, 0, 3, true},
		{"custom reset", Policy{ResetAfter: 5 * time.Second}, History{Delay: time.Minute}, 5 * time.Second, exitCode(1), Restart, time.Second, time.Second, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, h := tt.p.Decide(tt.h, tt.ran, tt.ex, t0, half)
			if d.Action != tt.wantAction || d.After != tt.wantAfter {
				t.Errorf("Decide(%+v, %v, %v) = %v after %v (%s), want %v after %v", tt.h, tt.ran, tt.ex, d.Action, d.After, d.Reason, tt.wantAction, tt.wantAfter)
			}
			if h.Delay != tt.wantDelay || len(h.Failures) != tt.wantFails || h.Crashloop != tt.wantLoop {
				t.Errorf("Decide(...) history = delay %v, %d failures, crashloop %v; want %v, %d, %v", h.Delay, len(h.Failures), h.Crashloop, tt.wantDelay, tt.wantFails, tt.wantLoop)
			}
			if h.LastExit == nil || *h.LastExit != tt.ex {
				t.Errorf("Decide(...) LastExit = %v, want %v", h.LastExit, tt.ex)
			}
			wantRestarts := tt.h.Restarts
			if tt.wantAction != StayDown {
				wantRestarts++
			}
			if h.Restarts != wantRestarts {
				t.Errorf("Decide(...) Restarts = %d, want %d", h.Restarts, wantRestarts)
			}
		})
	}
}

func TestDecideStayDownHasReason(t *testing.T) {
	for _, ex := range []Exit{exitCode(125), exitCode(7)} {
		d, _ := Policy{NoRestartCodes: []int{7}}.Decide(History{}, 0, ex, t0, half)
		if d.Action != StayDown || d.Reason == "" {
			t.Errorf("Decide(%v) = %v %q, want stay down with a reason", ex, d.Action, d.Reason)
		}
	}
}

func TestJitter(t *testing.T) {
	tests := []struct {
		p    Policy
		rnd  func() float64
		want time.Duration
	}{
		{Policy{}, func() float64 { return 0 }, 800 * time.Millisecond},
		{Policy{}, half, time.Second},
		{Policy{}, func() float64 { return 0.75 }, 1100 * time.Millisecond},
		{Policy{Jitter: 0.5}, func() float64 { return 0 }, 500 * time.Millisecond},
		{Policy{Jitter: -1}, func() float64 { return 0 }, time.Second},
		{Policy{}, nil, time.Second},
	}
	for _, tt := range tests {
		d, _ := tt.p.Decide(History{}, 0, exitCode(1), t0, tt.rnd)
		if d.After != tt.want {
			t.Errorf("Policy{Jitter: %v}.Decide(...).After = %v, want %v", tt.p.Jitter, d.After, tt.want)
		}
	}
	// Every delay stays within ±20% whatever the source says.
	for _, r := range []float64{0, 0.1, 0.5, 0.9, 0.999999} {
		d, _ := Policy{}.Decide(History{Delay: time.Minute}, 0, exitCode(1), t0, func() float64 { return r })
		if d.After < 96*time.Second || d.After > 144*time.Second {
			t.Errorf("Decide with rnd %v: After = %v, want within 2m±20%%", r, d.After)
		}
	}
}

// Decide must not share the Failures array with its input, or a caller
// persisting the old History would see it change.
func TestDecideDoesNotAlias(t *testing.T) {
	in := History{Failures: make([]time.Time, 1, 10)}
	in.Failures[0] = t0.Add(-time.Second)
	_, out := Policy{}.Decide(in, 0, exitCode(1), t0, half)
	out.Failures[0] = time.Time{}
	if in.Failures[0].IsZero() {
		t.Errorf("Decide's new history shares Failures with the old one")
	}
}

func TestOperatorStart(t *testing.T) {
	ex := exitCode(1)
	h := History{Restarts: 12, Delay: time.Minute, Failures: ago(10), Crashloop: true, LastExit: &ex}
	got := h.OperatorStart()
	want := History{Restarts: 12, LastExit: &ex}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("OperatorStart() = %+v, want %+v", got, want)
	}
	d, _ := Policy{}.Decide(got, 0, exitCode(1), t0, half)
	if d.Action != Restart || d.After != time.Second {
		t.Errorf("Decide after OperatorStart = %v after %v, want restart after 1s", d.Action, d.After)
	}
}

func TestHistoryJSON(t *testing.T) {
	ex := killedBy("SIGKILL", 9)
	h := History{Restarts: 3, Delay: 4 * time.Second, Failures: ago(3), Crashloop: true, LastExit: &ex}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var got History
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, h) {
		t.Errorf("json round trip = %+v, want %+v (%s)", got, h, b)
	}
}

func TestPolicyFrom(t *testing.T) {
	r := manifest.Restart{
		Policy: "on-failure", NoRestartCodes: []int{3}, RestartCodes: []int{4},
		Delay: manifest.Duration{D: 2 * time.Second}, MaxDelay: manifest.Duration{D: time.Minute},
		ResetAfter: manifest.Duration{D: 10 * time.Second},
	}
	got := PolicyFrom(r)
	want := Policy{Mode: "on-failure", NoRestartCodes: []int{3}, RestartCodes: []int{4}, Delay: 2 * time.Second, MaxDelay: time.Minute, ResetAfter: 10 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PolicyFrom(%+v) = %+v, want %+v", r, got, want)
	}
	if got := PolicyFrom(manifest.Restart{}).withDefaults(); got.Delay != time.Second || got.MaxDelay != 5*time.Minute ||
		got.ResetAfter != time.Minute || got.Burst != 10 || got.Window != 10*time.Minute || got.CrashloopRetry != 30*time.Minute || got.Jitter != 0.2 {
		t.Errorf("PolicyFrom(zero).withDefaults() = %+v, want the defaults", got)
	}
}

// A workload that fails at once, under the defaults and in fake time:
// the delays double from 1 s, the 10th failure (after 511 s) enters
// crashloop, which retries every 30 min and never gives up; a healthy
// run ends it.
func TestPolicyTimeline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var p Policy
		var h History
		var d Decision
		start := time.Now()
		var delays []time.Duration
		for range 9 {
			d, h = p.Decide(h, 0, exitCode(1), time.Now(), half)
			delays = append(delays, d.After)
			time.Sleep(d.After)
		}
		want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256}
		for i := range want {
			want[i] *= time.Second
		}
		if !reflect.DeepEqual(delays, want) {
			t.Errorf("delays = %v, want %v", delays, want)
		}
		d, h = p.Decide(h, 0, exitCode(1), time.Now(), half)
		if elapsed := time.Since(start); d.Action != CrashloopRetry || elapsed != 511*time.Second {
			t.Errorf("10th failure at %v: %v, want crashloop at 8m31s", elapsed, d.Action)
		}
		for i := range 48 { // a day of retries
			time.Sleep(d.After)
			d, h = p.Decide(h, 0, exitCode(1), time.Now(), half)
			if d.Action != CrashloopRetry || d.After != 30*time.Minute {
				t.Fatalf("retry %d: %v after %v, want crashloop retry after 30m", i, d.Action, d.After)
			}
		}
		time.Sleep(d.After)
		time.Sleep(time.Minute) // a healthy run
		d, h = p.Decide(h, time.Minute, exitCode(1), time.Now(), half)
		if d.Action != Restart || d.After != time.Second || h.Crashloop {
			t.Errorf("after a healthy run: %v after %v, crashloop %v; want restart after 1s", d.Action, d.After, h.Crashloop)
		}
		if h.Restarts != 9+1+48+1 {
			t.Errorf("Restarts = %d, want %d", h.Restarts, 9+1+48+1)
		}
	})
}

// A workload that runs 61 s each time is never throttled.
func TestPolicyHealthyRunsNeverBackOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var p Policy
		var h History
		for i := range 100 {
			time.Sleep(61 * time.Second)
			var d Decision
			d, h = p.Decide(h, 61*time.Second, exitCode(1), time.Now(), half)
			if d.Action != Restart || d.After != time.Second {
				t.Fatalf("run %d: %v after %v, want restart after 1s", i, d.Action, d.After)
			}
			time.Sleep(d.After)
		}
	})
}

// Exits spread just wider than the burst rule allows never crashloop:
// 10 failures spaced 67 s apart span more than 10 min.
func TestPolicyBurstWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := Policy{Delay: time.Second, MaxDelay: time.Second}
		var h History
		for i := range 30 {
			var d Decision
			d, h = p.Decide(h, 0, exitCode(1), time.Now(), half)
			if d.Action != Restart {
				t.Fatalf("failure %d with %d in the window: %v, want restart", i, len(h.Failures), d.Action)
			}
			time.Sleep(67 * time.Second)
		}
		p.Window = 11 * time.Minute
		if d, _ := p.Decide(h, 0, exitCode(1), time.Now(), half); d.Action != CrashloopRetry {
			t.Errorf("the same exits with an 11 min window: %v, want crashloop", d.Action)
		}
	})
}
