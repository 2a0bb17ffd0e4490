package apps

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"allium/api"
	"allium/state"
)

// TestEventsFollowHasEachEventOnce: a follower that subscribes while
// events are being published gets each of them once, whether it comes
// from the record or from the live feed. (The duplicate this guards
// against needed a publish to land between recording and handing out,
// a window too narrow to hit on purpose; publish now closes it by
// construction, and this checks that nothing is lost or doubled.)
func TestEventsFollowHasEachEventOnce(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	db, err := state.Open(filepath.Join(t.TempDir(), "state.db"), log)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := &eventHub{log: log, db: db, followers: map[chan api.Event]struct{}{}}
	const total = 40
	for round := range 30 {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range total {
				h.publish(api.Event{Type: "test", Message: fmt.Sprintf("r%d e%d", round, i)})
			}
		}()
		ctx, cancel := context.WithCancel(context.Background())
		seen := map[string]int{}
		var mu sync.Mutex
		done := make(chan error, 1)
		go func() {
			done <- h.stream(ctx, true, func(ev api.Event) error {
				mu.Lock()
				defer mu.Unlock()
				seen[ev.Message]++
				return nil
			})
		}()
		wg.Wait()
		// The last event of the round, seen once, means all are in.
		last := fmt.Sprintf("r%d e%d", round, total-1)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			mu.Lock()
			n := seen[last]
			mu.Unlock()
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the follower never got %q", round, last)
			}
		}
		cancel()
		<-done
		mu.Lock()
		for i := range total {
			if m := fmt.Sprintf("r%d e%d", round, i); seen[m] != 1 {
				t.Errorf("round %d: event %q seen %d times, want once", round, m, seen[m])
			}
		}
		mu.Unlock()
	}
}
