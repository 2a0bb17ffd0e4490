package testkit

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLockedBuffer(t *testing.T) {
	var b LockedBuffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("x"))
				_ = b.String() // read while others write: -race checks the lock
			}
		})
	}
	wg.Wait()
	if got := b.String(); got != strings.Repeat("x", 400) {
		t.Errorf("String() after 400 writes of x = %d bytes, want 400", len(got))
	}
}

func TestSleep(t *testing.T) {
	if !Sleep(t.Context(), time.Millisecond) {
		t.Errorf("Sleep(live ctx, 1ms) = false, want true")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	start := time.Now()
	if Sleep(ctx, time.Hour) {
		t.Errorf("Sleep(done ctx, 1h) = true, want false")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Sleep(done ctx, 1h) took %s, want it to return at once", d)
	}
}

func TestRootTier(t *testing.T) {
	t.Setenv(rootEnv, "")
	if ok, why := RootTier(); ok || !strings.Contains(why, rootEnv+"=1") {
		t.Errorf("RootTier() with %s unset = %v, %q; want false and how to enable it", rootEnv, ok, why)
	}
}
