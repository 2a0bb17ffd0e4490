package apps

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"allium/state"
)

// Issue 10: a container whose command powered the node off 3 s after
// its start did so again at every boot, since each boot restored it.
// judge holds a container once two boots in a row ended soon after its
// start.
func TestJudge(t *testing.T) {
	const w = 30 * time.Second
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	started := func(boot uint64, downs int) state.BootLoop {
		return state.BootLoop{Boot: boot, Started: t0, Downs: downs}
	}
	mark := func(boot uint64, after time.Duration, by string) state.Alive {
		return state.Alive{Boot: boot, Time: t0.Add(after), Shutdown: by}
	}
	for _, tc := range []struct {
		name      string
		b         state.BootLoop
		boot      uint64
		prev      state.Alive
		wantDowns int
		wantHeld  bool
	}{
		{"never started", state.BootLoop{}, 5, state.Alive{}, 0, false},
		{"started two boots ago", started(3, 1), 5, mark(3, time.Second, ""), 0, false},
		{"no mark of the previous boot: an unclean end before the window", started(4, 0), 5, mark(3, time.Hour, ""), 1, false},
		{"the same, a second boot in a row", started(4, 1), 5, mark(2, 0, ""), 2, true},
		{"a shutdown by signal 3 s after the start", started(4, 0), 5, mark(4, 3*time.Second, "signal SIGTERM"), 1, false},
		{"the same, a second time", started(4, 1), 5, mark(4, 3*time.Second, "signal SIGTERM"), 2, true},
		{"the operator asked for the shutdown", started(4, 1), 5, mark(4, time.Second, ShutdownOperator), 0, false},
		{"the boot survived the window", started(4, 1), 5, mark(4, w, ""), 0, false},
		{"a mark before a later restart", started(4, 1), 5, mark(4, -time.Minute, ""), 2, true},
		{"just inside the window", started(4, 1), 5, mark(4, w-time.Millisecond, "power button"), 2, true},
	} {
		got := judge("poison", tc.b, tc.boot, tc.prev, w)
		if got.Downs != tc.wantDowns || (got.Held != "") != tc.wantHeld {
			t.Errorf("%s: judge(%+v, boot %d, %+v) = downs %d, held %q; want downs %d, held %v",
				tc.name, tc.b, tc.boot, tc.prev, got.Downs, got.Held, tc.wantDowns, tc.wantHeld)
		}
		if tc.wantHeld && !strings.Contains(got.Held, "cloud start") {
			t.Errorf("%s: held %q does not say how to clear it", tc.name, got.Held)
		}
	}
	// Held stays held, whatever the previous boot did, until an
	// operator's start clears it.
	held := state.BootLoop{Boot: 4, Started: t0, Downs: 2, Held: "held"}
	if got := judge("poison", held, 6, state.Alive{Boot: 5, Time: t0.Add(time.Hour)}, w); got != held {
		t.Errorf("judge(held) = %+v, want it unchanged", got)
	}
}

// The marker writes the boot's mark a window after a start, once for a
// burst, and the shutdown's last.
func TestAliveMarker(t *testing.T) {
	db, err := state.Open(filepath.Join(t.TempDir(), "state.db"), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m := &aliveMarker{log: slog.Default(), db: db, boot: 7, window: 50 * time.Millisecond}
	start := time.Now()
	m.started(start)
	m.started(start.Add(10 * time.Millisecond))
	var a state.Alive
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if a, _ = db.Alive(); a.Boot == 7 {
			break
		}
	}
	if a.Boot != 7 || a.Time.Sub(start) < 50*time.Millisecond || a.Shutdown != "" {
		t.Errorf("mark after the starts = %+v; want boot 7, at least the window after the first start", a)
	}
	m.shutdown("signal SIGTERM")
	m.started(time.Now()) // after the shutdown: ignored
	time.Sleep(100 * time.Millisecond)
	if a, _ = db.Alive(); a.Shutdown != "signal SIGTERM" {
		t.Errorf("mark after the shutdown = %+v, want Shutdown %q", a, "signal SIGTERM")
	}
}
