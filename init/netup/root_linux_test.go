package netup

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"allium/internal/testkit"
)

// The root tests run each scenario in a child copy of this test binary,
// started in new network and UTS namespaces, so that every goroutine of
// Up, the lease loop and nclient4 lives in the namespace under test and the
// host's links and hostname are never touched. The child makes a second
// namespace for the far end of a veth pair:
//
//	child netns (Up runs here)          peer netns (made by the child)
//	lo, vc0 <------- veth pair -------> vs0 10.99.0.1/24
//	                                    DHCP server (server4), TCP :7777
const childEnv = "ALLIUM_NETUP_CHILD"

func TestRootStatic(t *testing.T) { runChild(t, "static") }
func TestRootDHCP(t *testing.T)   { runChild(t, "dhcp") }

// TestRootDHCPRenew runs the real client against the real server with short
// leases: renewal, then a NAK and a new address.
func TestRootDHCPRenew(t *testing.T) { runChild(t, "dhcp-renew") }

// runChild runs TestNetnsChild with scenario in new namespaces.
func runChild(t *testing.T, scenario string) {
	testkit.NeedRoot(t) // to create network namespaces
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestNetnsChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+scenario)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWUTS,
		Pdeathsig:  syscall.SIGKILL,
	}
	out, err := cmd.CombinedOutput()
	t.Logf("%s in namespaces:\n%s", cmd, out)
	if err != nil || !strings.Contains(string(out), "--- PASS: TestNetnsChild") {
		t.Fatalf("scenario %s: %v, want the child to pass", scenario, err)
	}
}

// TestNetnsChild is the child side of the root tests.
func TestNetnsChild(t *testing.T) {
	switch s := os.Getenv(childEnv); s {
	case "":
		t.Skip("helper of the root tests; runs only as their child")
	case "static":
		childStatic(t)
	case "dhcp":
		childDHCP(t)
	case "dhcp-renew":
		childDHCPRenew(t)
	default:
		t.Fatalf("unknown scenario %q", s)
	}
}

// setupPeer makes the peer namespace and the veth pair, and returns the
// peer.
func setupPeer(t *testing.T) netns.NsHandle {
	peer := testkit.NetNS(t)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vc0"}, PeerName: "vs0"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("add veth pair: %v", err)
	}
	vs0, err := netlink.LinkByName("vs0")
	if err == nil {
		err = netlink.LinkSetNsFd(vs0, int(peer))
	}
	if err != nil {
		t.Fatalf("move vs0 to the peer namespace: %v", err)
	}
	h, err := netlink.NewHandleAt(peer)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	vs0, err = h.LinkByName("vs0")
	if err == nil {
		err = h.AddrAdd(vs0, &netlink.Addr{IPNet: ipNet(pfx("10.99.0.1/24"))})
	}
	if err == nil {
		err = h.LinkSetUp(vs0)
	}
	if err != nil {
		t.Fatalf("configure vs0: %v", err)
	}
	return peer
}

// rootLogger logs into a buffer that the test prints at its end: the lease
// loop may still log after the test returns.
func rootLogger(t *testing.T) *slog.Logger {
	buf := &testkit.LockedBuffer{}
	t.Cleanup(func() { t.Logf("log:\n%s", buf) })
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// addrs returns the IPv4 addresses on dev.
func addrs(t *testing.T, dev string) []netip.Prefix {
	t.Helper()
	l, err := netlink.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	as, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Prefix
	for _, a := range as {
		p, _ := netip.AddrFromSlice(a.IP.To4())
		n, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(p, n))
	}
	return out
}

// defaultGateway returns the gateway of dev's default route and whether it
// is on-link.
func defaultGateway(t *testing.T, dev string) (netip.Addr, bool) {
	t.Helper()
	l, err := netlink.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := netlink.RouteList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			gw, _ := netip.AddrFromSlice(r.Gw.To4())
			return gw, r.Flags&int(netlink.FLAG_ONLINK) != 0
		}
	}
	return netip.Addr{}, false
}

func checkLoUp(t *testing.T) {
	t.Helper()
	lo, err := netlink.LinkByName("lo")
	if err != nil || lo.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("lo = %v, %v, want it up", lo, err)
	}
}

// serveTCP answers "hi" on 10.99.0.1:7777 in the peer namespace.
func serveTCP(t *testing.T, peer netns.NsHandle) {
	var ln net.Listener
	err := testkit.InNetNS(peer, func() (err error) { ln, err = net.Listen("tcp4", "10.99.0.1:7777"); return err })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
}

// checkReach dials the peer's TCP server from this namespace.
func checkReach(t *testing.T) {
	t.Helper()
	c, err := net.DialTimeout("tcp4", "10.99.0.1:7777", 5*time.Second)
	if err != nil {
		t.Errorf("dial the peer: %v", err)
		return
	}
	defer c.Close()
	if b, err := io.ReadAll(c); string(b) != "hi" {
		t.Errorf("read from the peer = %q, %v, want %q", b, err, "hi")
	}
}

func childStatic(t *testing.T) {
	peer := setupPeer(t)
	serveTCP(t, peer)
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	cfg, err := ParseIP("10.99.0.5::10.99.0.1:255.255.255.0:allium-test.example.org:vc0:off:10.99.0.53")
	if err != nil {
		t.Fatal(err)
	}
	st, err := Up(t.Context(), cfg, rc, rootLogger(t))
	want := State{Source: "static", Interface: "vc0", Address: pfx("10.99.0.5/24"), Gateway: ip("10.99.0.1"),
		DNS: []netip.Addr{ip("10.99.0.53")}, Hostname: "allium-test"}
	if err != nil || !sameState(st, want) {
		t.Fatalf("Up(%+v) = %+v, %v, want %+v, nil", cfg, st, err, want)
	}
	checkLoUp(t)
	if got := addrs(t, "vc0"); !slices.Equal(got, []netip.Prefix{pfx("10.99.0.5/24")}) {
		t.Errorf("addresses on vc0 = %v, want [10.99.0.5/24]", got)
	}
	if gw, onlink := defaultGateway(t, "vc0"); gw != ip("10.99.0.1") || onlink {
		t.Errorf("default route on vc0 = via %v onlink=%v, want via 10.99.0.1, not onlink", gw, onlink)
	}
	if h, err := os.Hostname(); h != "allium-test" {
		t.Errorf("hostname = %q, %v, want allium-test", h, err)
	}
	wantConf := "# Written by allium netup (static on vc0).\nnameserver 10.99.0.53\n"
	if got := readFile(t, rc); got != wantConf {
		t.Errorf("resolv.conf = %q, want %q", got, wantConf)
	}
	checkReach(t)
	childStaticOnlink(t)
}

// childStaticOnlink: a /32 with its gateway outside it gets an on-link
// default route, and the gateway is reachable.
func childStaticOnlink(t *testing.T) {
	l, _ := netlink.LinkByName("vc0")
	if err := netlink.AddrDel(l, &netlink.Addr{IPNet: ipNet(pfx("10.99.0.5/24"))}); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Mode: ModeStatic, Device: "vc0", Address: pfx("10.99.0.6/32"), Gateway: ip("10.99.0.1")}
	if _, err := Up(t.Context(), cfg, "", rootLogger(t)); err != nil {
		t.Fatalf("Up(%+v) = %v, want nil", cfg, err)
	}
	if gw, onlink := defaultGateway(t, "vc0"); gw != ip("10.99.0.1") || !onlink {
		t.Errorf("default route on vc0 = via %v onlink=%v, want via 10.99.0.1 onlink", gw, onlink)
	}
	checkReach(t)
}

// dhcpServer is a DHCP server for the peer namespace. It hands out one
// address at a time; its fields may change while it runs.
type dhcpServer struct {
	mu      sync.Mutex
	addr    netip.Addr
	lease   time.Duration
	nakNext bool     // NAK the next request that carries ciaddr (renew, rebind)
	seen    []string // "DISCOVER", "REQUEST", "RENEW"
}

func startDHCPServer(t *testing.T, peer netns.NsHandle, s *dhcpServer) {
	var srv *server4.Server
	err := testkit.InNetNS(peer, func() (err error) {
		srv, err = server4.NewServer("vs0", nil, s.handle)
		return err
	})
	if err != nil {
		t.Fatalf("start the DHCP server: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	go srv.Serve()
}

func (s *dhcpServer) Seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

func (s *dhcpServer) set(f func(s *dhcpServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *dhcpServer) handle(conn net.PacketConn, _ net.Addr, m *dhcpv4.DHCPv4) {
	s.mu.Lock()
	kind, typ := m.MessageType().String(), dhcpv4.MessageTypeOffer
	if m.MessageType() == dhcpv4.MessageTypeRequest {
		typ = dhcpv4.MessageTypeAck
		if !m.ClientIPAddr.IsUnspecified() {
			kind = "RENEW"
			if s.nakNext {
				typ, s.nakNext = dhcpv4.MessageTypeNak, false
			}
		}
	}
	s.seen = append(s.seen, kind)
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 99, 0, 1))),
	}
	if typ != dhcpv4.MessageTypeNak {
		mods = append(mods,
			dhcpv4.WithYourIP(s.addr.AsSlice()),
			dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
			dhcpv4.WithRouter(net.IPv4(10, 99, 0, 1)),
			dhcpv4.WithDNS(net.IPv4(10, 99, 0, 53)),
			dhcpv4.WithOption(dhcpv4.OptDomainName("test.example")),
			dhcpv4.WithLeaseTime(uint32(s.lease/time.Second)))
	}
	s.mu.Unlock()
	reply, err := dhcpv4.NewReplyFromRequest(m, mods...)
	if err != nil {
		return
	}
	// The client has no address yet, or takes its answers from a raw
	// socket: broadcast is always heard.
	conn.WriteTo(reply.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort})
}

// childDHCP runs Up as PID 1 would, with the first ethernet link.
func childDHCP(t *testing.T) {
	peer := setupPeer(t)
	serveTCP(t, peer)
	startDHCPServer(t, peer, &dhcpServer{addr: ip("10.99.0.50"), lease: time.Hour})
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	st, err := Up(ctx, Config{Hostname: "dhcp-guest"}, rc, rootLogger(t))
	want := State{Source: "dhcp", Interface: "vc0", Address: pfx("10.99.0.50/24"), Gateway: ip("10.99.0.1"),
		DNS: []netip.Addr{ip("10.99.0.53")}, Server: ip("10.99.0.1"), Lease: time.Hour, Hostname: "dhcp-guest"}
	if err != nil || !sameState(st, want) {
		t.Fatalf("Up(dhcp) = %+v, %v, want %+v, nil", st, err, want)
	}
	checkLoUp(t)
	if got := addrs(t, "vc0"); !slices.Equal(got, []netip.Prefix{pfx("10.99.0.50/24")}) {
		t.Errorf("addresses on vc0 = %v, want [10.99.0.50/24]", got)
	}
	if gw, _ := defaultGateway(t, "vc0"); gw != ip("10.99.0.1") {
		t.Errorf("default route on vc0 = via %v, want via 10.99.0.1", gw)
	}
	wantConf := "# Written by allium netup (dhcp on vc0 from 10.99.0.1).\nnameserver 10.99.0.53\nsearch test.example\n"
	if got := readFile(t, rc); got != wantConf {
		t.Errorf("resolv.conf = %q, want %q", got, wantConf)
	}
	checkReach(t)
}

// fastTimings shrink the lease loop's waits so a renewal takes seconds.
var fastTimings = timings{
	poll:        50 * time.Millisecond,
	linkWait:    5 * time.Second,
	carrierWait: 2 * time.Second,
	firstLease:  10 * time.Second,
	attempt:     3 * time.Second,
	retryMin:    200 * time.Millisecond,
	retryMax:    time.Second,
	renewMin:    500 * time.Millisecond,
	minLease:    2 * time.Second,
}

// waitFor polls cond for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// childDHCPRenew is Up with short timings, against the real kernel and the
// real nclient4.
func childDHCPRenew(t *testing.T) {
	peer := setupPeer(t)
	s := &dhcpServer{addr: ip("10.99.0.50"), lease: 3 * time.Second}
	startDHCPServer(t, peer, s)
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	u := &upper{k: newKernel(), dial: dialDHCP, t: fastTimings, log: rootLogger(t), resolvConf: rc}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if _, err := u.up(ctx, Config{Device: "vc0"}); err != nil {
		t.Fatalf("up(dhcp, 3 s lease) = %v, want nil", err)
	}
	bound := time.Now()
	if !waitFor(5*time.Second, func() bool { return slices.Contains(s.Seen(), "RENEW") }) {
		t.Fatalf("server saw %q in 5 s, want a RENEW", s.Seen())
	}
	// Past the first lease's end: the kernel would have dropped the
	// address unless the renewal refreshed its lifetime.
	time.Sleep(time.Until(bound.Add(4 * time.Second)))
	if got := addrs(t, "vc0"); !slices.Equal(got, []netip.Prefix{pfx("10.99.0.50/24")}) {
		t.Errorf("addresses on vc0 after renewals = %v, want [10.99.0.50/24]", got)
	}
	// The server changes its mind: NAK, and a new address.
	s.set(func(s *dhcpServer) { s.nakNext, s.addr = true, ip("10.99.0.51") })
	want := []netip.Prefix{pfx("10.99.0.51/24")}
	if !waitFor(8*time.Second, func() bool { return slices.Equal(addrs(t, "vc0"), want) }) {
		t.Errorf("addresses on vc0 after a NAK = %v, want %v (server saw %q)", addrs(t, "vc0"), want, s.Seen())
	}
	// The route follows the address: wait for it too, the two are not
	// applied at the same instant.
	if !waitFor(5*time.Second, func() bool { gw, _ := defaultGateway(t, "vc0"); return gw == ip("10.99.0.1") }) {
		gw, _ := defaultGateway(t, "vc0")
		t.Errorf("default route on vc0 after the new address = via %v, want via 10.99.0.1", gw)
	}
}
