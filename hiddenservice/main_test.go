package hiddenservice_test

import (
	"os"
	"testing"

	"allium/internal/tornet"
)

// torNet is the private Tor network this package's tor tests share.
var torNet tornet.Shared

func TestMain(m *testing.M) { os.Exit(torNet.Close(m.Run())) }

func torNetwork(t *testing.T) *tornet.Network { return torNet.Network(t) }
