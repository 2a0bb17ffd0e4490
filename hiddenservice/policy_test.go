package hiddenservice

import (
	"testing"
	"time"
)

func TestBackoffNext(t *testing.T) {
	var b Backoff
	d := time.Duration(0)
	var got []time.Duration
	for range 9 {
		d = b.Next(d, time.Second)
		got = append(got, d)
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("Backoff{}.Next delays = %v, want %v seconds", got, want)
		}
	}
	if d := b.Next(time.Minute, 61*time.Second); d != time.Second {
		t.Errorf("Next(1m, ran 61s) = %s, want 1s (a long run resets the backoff)", d)
	}
	custom := Backoff{Delay: 10 * time.Millisecond, MaxDelay: 15 * time.Millisecond}
	if d := custom.Next(10*time.Millisecond, 0); d != 15*time.Millisecond {
		t.Errorf("custom.Next(10ms) = %s, want the 15ms cap", d)
	}
}

func TestBackoffFailed(t *testing.T) {
	var b Backoff
	t0 := time.Unix(1_700_000_000, 0)
	var recent []time.Time
	var loop bool
	for i := range 4 {
		if recent, loop = b.Failed(recent, t0.Add(time.Duration(i)*time.Minute)); loop {
			t.Fatalf("crash loop after %d failures, want 5", i+1)
		}
	}
	if recent, loop = b.Failed(recent, t0.Add(4*time.Minute)); !loop {
		t.Fatal("no crash loop after 5 failures in 4 min")
	}
	// 11 min later the old failures have left the window.
	if recent, loop = b.Failed(recent, t0.Add(15*time.Minute)); loop || len(recent) != 1 {
		t.Errorf("Failed 11 min later = %d recent, loop %v, want 1 and no loop", len(recent), loop)
	}
}
