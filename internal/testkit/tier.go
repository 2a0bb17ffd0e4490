package testkit

import (
	"fmt"
	"os"
	"testing"
)

// The heavy tiers are off unless their variable is "1"; `make test`
// sets them all.
const (
	rootEnv = "ALLIUM_ROOT_TESTS" // real mounts, chroots, namespaces: needs euid 0
	torEnv  = "ALLIUM_TOR_TESTS"  // a private Tor network on 127.0.0.1
)

// RootTier reports whether the root tier runs: ALLIUM_ROOT_TESTS=1 and
// euid 0. When it does not, why says how to enable it.
func RootTier() (ok bool, why string) {
	if os.Getenv(rootEnv) != "1" {
		return false, "root tier: set " + rootEnv + "=1 and run as root (`make test` does)"
	}
	if euid := os.Geteuid(); euid != 0 {
		return false, fmt.Sprintf("root tier: %s=1, but euid is %d: run as root", rootEnv, euid)
	}
	return true, ""
}

// NeedRoot skips tb unless the root tier runs, saying how to enable it.
func NeedRoot(tb testing.TB) {
	tb.Helper()
	if ok, why := RootTier(); !ok {
		tb.Skip(why)
	}
}

// NeedTor skips tb unless ALLIUM_TOR_TESTS=1, saying how to enable it.
func NeedTor(tb testing.TB) {
	tb.Helper()
	if os.Getenv(torEnv) != "1" {
		tb.Skip("tor tier: runs a private Tor network on 127.0.0.1; set " + torEnv + "=1 " +
			"(needs tor and tor-gencert: apt-get install tor); `make test` does")
	}
}
