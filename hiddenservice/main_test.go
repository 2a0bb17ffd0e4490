package hiddenservice_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"allium/hiddenservice/tornet"
)

// network is the private Tor network the end-to-end tests share; nil
// unless ALLIUM_TOR_TESTS=1.
var network *tornet.Network

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	if os.Getenv("ALLIUM_TOR_TESTS") != "1" {
		return m.Run()
	}
	// Every tor this test binary starts, from the first on, must stay
	// on the loopback.
	mon := tornet.Watch(300*time.Millisecond, func() []int { return tornet.ChildPIDs("tor") })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	// ALLIUM_TORNET_DIR keeps the network's directory, with info-level
	// tor logs, for a post-mortem.
	keep := os.Getenv("ALLIUM_TORNET_DIR")
	n, err := tornet.Start(ctx, tornet.Options{Dir: keep, DebugLog: keep != "", Log: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		mon.Stop()
		return 1
	}
	fmt.Fprintf(os.Stderr, "tornet: network up in %s\n", time.Since(start).Round(time.Millisecond))
	network = n
	code := m.Run()
	n.Close()
	checked, bad := mon.Stop()
	fmt.Fprintf(os.Stderr, "tornet: %d socket observations of tor processes, %d off the loopback\n", checked, len(bad))
	for _, s := range bad {
		fmt.Fprintln(os.Stderr, "tornet: socket off the loopback:", s)
		code = 1
	}
	return code
}

func torNetwork(t *testing.T) *tornet.Network {
	t.Helper()
	if network == nil {
		t.Skip("runs a private Tor network on 127.0.0.1; set ALLIUM_TOR_TESTS=1 (needs tor and tor-gencert: apt-get install tor)")
	}
	return network
}
