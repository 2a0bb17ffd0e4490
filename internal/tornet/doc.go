// Package tornet is test-only code: it runs a private Tor network on
// 127.0.0.1 for the tor tier (ALLIUM_TOR_TESTS=1): one directory
// authority and three relays (the fewest that carry v3 onion services),
// plus client tors on demand. It is the recipe measured in
// ../shared/notes/tor-test-network.md: a first consensus about 8 s after
// start, the authority's keys cached in os.TempDir() across runs
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
// Use one network per test package, through Shared: it starts on the
// first test that asks for it and skips the test outside the tor tier.
//
//	var torNet tornet.Shared
//
//	func TestMain(m *testing.M) { os.Exit(torNet.Close(m.Run())) }
//
//	func TestX(t *testing.T) { n := torNet.Network(t); ... }
//
// A service tor joins it with DirAuthorityLines (or ClientLines) in its
// torrc; StartClient starts a client tor with a SOCKS port.
//
// Only _test.go files import it, and no binary may link it; it lives
// under internal/ so that nothing outside Allium can. It owns no
// production code path: the node's own tor is package hiddenservice.
package tornet
