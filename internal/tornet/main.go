package tornet

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"allium/internal/testkit"
)

// Shared is a test package's one private network, started by the
// first test that asks for it (about 10 s) when ALLIUM_TOR_TESTS=1.
// From then on every tor the test binary starts, its grandchildren
// included (a node's tor under its PID 1), is watched: a socket off the
// loopback fails the run. $ALLIUM_TORNET_DIR keeps the network's
// directory, with info-level logs, for a post-mortem.
//
//	var torNet tornet.Shared
//
//	func TestMain(m *testing.M) { os.Exit(torNet.Close(m.Run())) }
//
//	func TestX(t *testing.T) { n := torNet.Network(t); ... }
type Shared struct {
	once sync.Once
	net  *Network
	err  error
	mon  *Monitor
}

// Network returns the network, starting it the first time, or skips
// the test outside the tor tier.
func (s *Shared) Network(tb testing.TB) *Network {
	tb.Helper()
	testkit.NeedTor(tb)
	s.once.Do(func() {
		s.mon = Watch(300*time.Millisecond, func() []int { return DescendantPIDs("tor") })
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		start := time.Now()
		keep := os.Getenv("ALLIUM_TORNET_DIR")
		s.net, s.err = Start(ctx, Options{Dir: keep, DebugLog: keep != "", Log: slog.New(slog.NewTextHandler(os.Stderr, nil))})
		if s.err == nil {
			fmt.Fprintf(os.Stderr, "tornet: network up in %s\n", time.Since(start).Round(time.Millisecond))
		}
	})
	if s.err != nil {
		tb.Fatalf("private tor network: %v", s.err)
	}
	return s.net
}

// Close stops the network, if it was started, and its watch, and
// returns code: the tests' exit code, or 1 if a tor left the loopback.
func (s *Shared) Close(code int) int {
	if s.mon == nil {
		return code
	}
	if s.net != nil {
		s.net.Close()
	}
	checked, bad := s.mon.Stop()
	fmt.Fprintf(os.Stderr, "tornet: %d socket observations of tor processes, %d off the loopback\n", checked, len(bad))
	for _, b := range bad {
		fmt.Fprintln(os.Stderr, "tornet: socket off the loopback:", b)
		code = 1
	}
	return code
}
