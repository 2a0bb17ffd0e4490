package main

import (
	"os"
	"testing"

	"allium/internal/tornet"
)

// torNet is the private Tor network the onion tests share, started by
// the first test that needs it: most of this package's tests do not.
var torNet tornet.Shared

func TestMain(m *testing.M) { os.Exit(torNet.Close(m.Run())) }

func torNetwork(tb testing.TB) *tornet.Network { return torNet.Network(tb) }
