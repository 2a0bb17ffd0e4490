package hiddenservice_test

import (
	"os"
	"testing"

	"allium/hiddenservice/tornet"
)

// network is the private Tor network the end-to-end tests share; nil
// unless ALLIUM_TOR_TESTS=1.
var network *tornet.Network

func TestMain(m *testing.M) {
	os.Exit(tornet.RunTests(m, func(n *tornet.Network) { network = n }))
}

func torNetwork(t *testing.T) *tornet.Network {
	t.Helper()
	if network == nil {
		t.Skip("runs a private Tor network on 127.0.0.1; set ALLIUM_TOR_TESTS=1 (needs tor and tor-gencert: apt-get install tor)")
	}
	return network
}
