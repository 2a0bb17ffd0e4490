package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"allium/hiddenservice/tornet"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if tor.net != nil {
		tor.net.Close()
		checked, bad := tor.mon.Stop()
		fmt.Fprintf(os.Stderr, "tornet: %d socket observations of tor processes (the network's and the nodes'), %d off the loopback\n", checked, len(bad))
		for _, s := range bad {
			fmt.Fprintln(os.Stderr, "tornet: socket off the loopback:", s)
			code = 1
		}
	}
	os.Exit(code)
}

// tor is the private Tor network the onion tests share, started by the
// first test that needs it (about 12 s) and closed by TestMain.
var tor struct {
	once sync.Once
	net  *tornet.Network
	err  error
	mon  *tornet.Monitor // every tor this test binary starts, nodes' included
}

// torNetwork returns the shared private network, or skips the test
// outside the tor tier.
func torNetwork(t testing.TB) *tornet.Network {
	t.Helper()
	if os.Getenv("ALLIUM_TOR_TESTS") != "1" {
		t.Skip("tor tier: runs a private Tor network on 127.0.0.1; set ALLIUM_TOR_TESTS=1 (needs tor and tor-gencert: apt-get install tor); `make test` does")
	}
	tor.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		start := time.Now()
		tor.mon = tornet.Watch(300*time.Millisecond, func() []int { return tornet.DescendantPIDs("tor") })
		keep := os.Getenv("ALLIUM_TORNET_DIR") // keeps the network's files, with info logs
		tor.net, tor.err = tornet.Start(ctx, tornet.Options{Dir: keep, DebugLog: keep != "", Log: slog.New(slog.NewTextHandler(os.Stderr, nil))})
		if tor.err != nil {
			tor.mon.Stop()
			tor.net = nil
		} else {
			fmt.Fprintf(os.Stderr, "tornet: network up in %s\n", time.Since(start).Round(time.Millisecond))
		}
	})
	if tor.err != nil {
		t.Fatalf("private tor network: %v", tor.err)
	}
	return tor.net
}
