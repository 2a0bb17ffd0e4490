// Package tornet runs a private Tor network on 127.0.0.1 for tests:
// one directory authority and three relays (the fewest that carry v3
// onion services), plus client tors on demand. It is the recipe
// measured in notes/tor-test-network.md: a first consensus about 8 s
// after start, the authority's keys cached in os.TempDir() across runs
// (tor-gencert is slow), and a wait until the consensus lists every
// relay with Running, Valid, Stable, Fast and Guard, and an HSDir,
// because clients started earlier back off for 10-20 s.
//
// Nothing leaves the loopback: every port is bound to 127.0.0.1, the
// DirAuthority line replaces tor's default authorities and fallbacks,
// relays read no resolv.conf (ServerDNSResolvConfFile /dev/null), and
// no tor loads GeoIP files. Watch checks it from /proc while a test
// runs. Every tor dies with the test process (Pdeathsig and
// __OwningControllerProcess).
//
// Use one network per test package, from TestMain:
//
//	func TestMain(m *testing.M) {
//		if os.Getenv("ALLIUM_TOR_TESTS") == "1" {
//			net, err = tornet.Start(ctx, tornet.Options{})
//			...
//			defer net.Close()
//		}
//		os.Exit(m.Run())
//	}
//
// A service tor joins it with DirAuthorityLines (or ClientLines) in its
// torrc; StartClient starts a client tor with a SOCKS port.
//
// It owns no production code path: only tests import it.
package tornet
