package testkit

import (
	"context"
	"time"
)

// Sleep waits d, or less if ctx ends first. It reports whether it slept
// all of d: false means ctx is done.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
