package tornet

import (
	"context"
	"testing"
	"time"

	"allium/internal/testkit"
)

// TestNetwork starts a network and a client, and checks that the client
// bootstraps and that no tor socket leaves the loopback meanwhile.
func TestNetwork(t *testing.T) {
	testkit.NeedTor(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Watch every tor child from the first one on.
	mon := Watch(100*time.Millisecond, func() []int { return ChildPIDs("tor") })
	start := time.Now()
	n, err := Start(ctx, Options{})
	if err != nil {
		mon.Stop()
		t.Fatal(err)
	}
	defer n.Close()
	t.Logf("network ready after %s", time.Since(start).Round(time.Millisecond))
	c, err := n.StartClient(ctx, "client", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("client bootstrapped after %s", time.Since(start).Round(time.Millisecond))
	if got, want := len(ChildPIDs("tor")), len(n.PIDs()); got != want || want != 5 {
		t.Errorf("ChildPIDs(tor) = %d processes, Network.PIDs() = %d, want 5 (4 nodes, 1 client)", got, want)
	}
	time.Sleep(time.Second)
	checked, bad := mon.Stop()
	if checked == 0 {
		t.Error("the socket monitor saw no sockets at all")
	}
	for _, s := range bad {
		t.Errorf("socket off the loopback: %s", s)
	}
	t.Logf("%d socket observations, all on the loopback; client SOCKS %s", checked, c.SocksAddr)
}
