package tornet

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseHexAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"00000000:0000":                         "0.0.0.0:0",
		"0202000A:0035":                         "10.0.2.2:53",
		"00000000000000000000000001000000:0050": "[::1]:80",
		"0000000000000000FFFF00000100007F:0016": "127.0.0.1:22", // v4-mapped
	} {
		got, err := parseHexAddr(in)
		if err != nil || got.String() != want {
			t.Errorf("parseHexAddr(%q) = %v, %v, want %s", in, got, err, want)
		}
	}
	if _, err := parseHexAddr("zz:1"); err == nil {
		t.Error("parseHexAddr(zz:1) succeeded")
	}
}

func TestParseNetTable(t *testing.T) {
	const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:A1B2 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:A1B3 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 20 4 30 10 -1
   2: 0F02000A:C350 0202000A:0035 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0000000000000000 20 4 30 10 -1
   3: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 444 1 0000000000000000 100 0 0 10 0
`
	socks, err := parseNetTable(strings.NewReader(table), "tcp", map[string]bool{"111": true, "222": true, "333": true, "444": true})
	if err != nil || len(socks) != 4 {
		t.Fatalf("parseNetTable = %v, %v, want 4 sockets", socks, err)
	}
	for i, want := range []bool{true, true, false, false} {
		if got := socks[i].Loopback(); got != want {
			t.Errorf("%s: Loopback() = %v, want %v", socks[i], got, want)
		}
	}
	mine, _ := parseNetTable(strings.NewReader(table), "tcp", map[string]bool{"222": true})
	if len(mine) != 1 || mine[0].Remote != netip.MustParseAddrPort("127.0.0.1:8080") {
		t.Errorf("parseNetTable(inode 222) = %v, want the one socket to 127.0.0.1:8080", mine)
	}
}

func TestParseStat(t *testing.T) {
	comm, ppid := parseStat("4242 (tor (x) y) S 77 4242 4242 0 -1")
	if comm != "tor (x) y" || ppid != 77 {
		t.Errorf("parseStat = %q, %d, want %q, 77", comm, ppid, "tor (x) y")
	}
}

func TestParseConsensus(t *testing.T) {
	const doc = `network-status-version 3 microdesc
valid-after 2026-01-01 00:00:10
r auth0 AAAA 2026-01-01 00:00:00 127.0.0.1 5000 5001
m sha256=x
s Authority Fast Guard HSDir Running Stable V2Dir Valid
r relay1 BBBB 2026-01-01 00:00:00 127.0.0.1 5002 0
s Fast Guard Running Stable Valid
r relay2 CCCC 2026-01-01 00:00:00 127.0.0.1 5003 0
s Fast Running Valid
`
	flags := ParseConsensus(doc)
	if len(flags) != 3 || len(flags["relay2"]) != 3 {
		t.Fatalf("ParseConsensus = %v", flags)
	}
	if got := missing(flags, []string{"auth0", "relay1"}); got != "" {
		t.Errorf("missing(auth0, relay1) = %q, want nothing", got)
	}
	for nicks, want := range map[string]string{
		"auth0 relay2": "relay2 lacks Stable",
		"auth0 relay3": "relay3 is not in the consensus",
		"relay1":       "no HSDir",
	} {
		if got := missing(flags, strings.Fields(nicks)); got != want {
			t.Errorf("missing(%s) = %q, want %q", nicks, got, want)
		}
	}
}

func TestStartOffset(t *testing.T) {
	// The first valid-after, at a multiple of 10 s plus the offset, is
	// 8 s after the start.
	for s := int64(0); s < 20; s++ {
		now := time.Unix(1_700_000_000+s, 0)
		off := int64(startOffset(now))
		first := now.Unix() + 1
		for (first-off)%10 != 0 {
			first++
		}
		if first-now.Unix() != 8 {
			t.Errorf("startOffset(%d) = %d: first vote round %d s after start, want 8", now.Unix(), off, first-now.Unix())
		}
	}
}

func TestTorrcLoopbackOnly(t *testing.T) {
	n := &Network{auth: &node{nick: "auth0", dir: "/d/auth0", orPort: 5000, dirPort: 5001, fp: strings.Repeat("A", 40)}, v3ident: strings.Repeat("B", 40)}
	relay := &node{nick: "relay1", dir: "/d/relay1", orPort: 5002}
	n.relays = []*node{relay}
	for _, nd := range []*node{n.auth, relay} {
		rc := n.torrc(nd, time.Unix(0, 0))
		for _, want := range []string{"ORPort 127.0.0.1:", "ServerDNSResolvConfFile /dev/null", `GeoIPFile ""`, "SocksPort 0", "DirAuthority auth0 orport=5000 no-v2 v3ident=" + n.v3ident + " 127.0.0.1:5001 " + n.auth.fp} {
			if !strings.Contains(rc, want) {
				t.Errorf("torrc(%s) lacks %q:\n%s", nd.nick, want, rc)
			}
		}
	}
	if rc := n.torrc(n.auth, time.Unix(0, 0)); !strings.Contains(rc, "DirPort 127.0.0.1:5001") || !strings.Contains(rc, "TestingV3AuthVotingStartOffset 8") {
		t.Errorf("authority torrc:\n%s", rc)
	}
}

// Sockets reads this very process's listener from /proc.
func TestSocketsSelf(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	socks, err := Sockets(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	want := netip.MustParseAddrPort(ln.Addr().String())
	for _, s := range socks {
		if s.Local == want {
			if !s.Loopback() || s.State != "0A" {
				t.Errorf("%s: want a loopback LISTEN socket", s)
			}
			return
		}
	}
	t.Errorf("Sockets(self) = %v, want one on %s", socks, want)
}
