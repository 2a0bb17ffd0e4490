package tornet

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// node is one tor of the network: the directory authority or a relay.
type node struct {
	nick    string
	dir     string // its DataDirectory
	orPort  int
	dirPort int    // the authority only
	fp      string // RSA identity fingerprint, 40 hex digits
	proc    *proc
}

// commonLines go into every torrc of the network, clients included.
func (n *Network) commonLines(nick, dir string) []string {
	var debug []string
	if n.opts.DebugLog {
		debug = []string{"Log info file " + dir + "/info.log"}
	}
	return append(append(debug,
		"DataDirectory "+dir,
		"Nickname "+nick,
		"Log notice file "+dir+"/notice.log",
		"SafeLogging 0",
		"LogTimeGranularity 1",
		"ShutdownWaitLength 0",
		fmt.Sprintf("__OwningControllerProcess %d", os.Getpid()),
		"PathsNeededToBuildCircuits 0.67",
		"TestingDirAuthVoteGuard *",
		"V3AuthNIntervalsValid 2",
		`GeoIPFile ""`,
		`GeoIPv6File ""`,
	), n.DirAuthorityLines()...)
}

// relayLines go into the authority's and the relays' torrcs.
func relayLines(nd *node) []string {
	return []string{
		"SocksPort 0",
		fmt.Sprintf("ORPort 127.0.0.1:%d", nd.orPort),
		"Address 127.0.0.1",
		"AssumeReachable 1",
		"ExitRelay 0",
		"ExitPolicy reject *:*",
		"ServerDNSResolvConfFile /dev/null",
		"ServerDNSDetectHijacking 0",
		"ServerDNSTestAddresses",
		"ContactInfo " + nd.nick + "@test.invalid",
	}
}

// authorityLines make the single directory authority vote every 10 s,
// the first time about 8 s after it starts (TestingV3AuthVotingStartOffset
// aligned on now), and give every relay Stable and Guard at once.
func authorityLines(nd *node, now time.Time) []string {
	return []string{
		fmt.Sprintf("DirPort 127.0.0.1:%d", nd.dirPort),
		"AuthoritativeDirectory 1",
		"V3AuthoritativeDirectory 1",
		"TestingV3AuthInitialVotingInterval 10",
		"TestingV3AuthInitialVoteDelay 2",
		"TestingV3AuthInitialDistDelay 2",
		"V3AuthVotingInterval 10",
		"V3AuthVoteDelay 2",
		"V3AuthDistDelay 2",
		fmt.Sprintf("TestingV3AuthVotingStartOffset %d", startOffset(now)),
		"AuthDirVoteStableGuaranteeMinUptime 0",
		"AuthDirVoteStableGuaranteeMTBF 0",
	}
}

// startOffset puts the first valid-after about 8 s after now, once the
// relays have uploaded their descriptors (with the interval at 10 s,
// tor's minimum with TestingTorNetwork).
func startOffset(now time.Time) int { return int((now.Unix() + 8) % 10) }

// torrc renders one node's configuration.
func (n *Network) torrc(nd *node, now time.Time) string {
	lines := append(n.commonLines(nd.nick, nd.dir), relayLines(nd)...)
	if nd == n.auth {
		lines = append(lines, authorityLines(nd, now)...)
	} else {
		// Clients fetch from the authority only: half-synced caches
		// answer 404 for microdescriptors, and clients retry every 10 s.
		lines = append(lines, "DirCache 0")
	}
	return strings.Join(lines, "\n") + "\n"
}

// DirAuthorityLines are what a tor needs in its torrc to join this
// network instead of the real one: TestingTorNetwork 1 and the
// authority. They replace tor's default authorities and fallbacks, so
// such a tor contacts nothing but 127.0.0.1.
func (n *Network) DirAuthorityLines() []string {
	a := n.auth
	return []string{
		"TestingTorNetwork 1",
		fmt.Sprintf("DirAuthority %s orport=%d no-v2 v3ident=%s 127.0.0.1:%d %s", a.nick, a.orPort, n.v3ident, a.dirPort, a.fp),
	}
}

// ClientLines are DirAuthorityLines plus the settings every tor of the
// network uses: no GeoIP, quick circuits, and UseEntryGuards 0 (with
// few relays, a guard can otherwise be chosen as a circuit's last hop
// too, and the circuit fails).
func (n *Network) ClientLines() []string {
	return append(n.DirAuthorityLines(),
		"PathsNeededToBuildCircuits 0.67",
		"UseEntryGuards 0",
		"LogTimeGranularity 1",
		"SafeLogging 0",
		`GeoIPFile ""`,
		`GeoIPv6File ""`,
		fmt.Sprintf("__OwningControllerProcess %d", os.Getpid()),
	)
}
