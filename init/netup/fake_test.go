package netup

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"allium/internal/testkit"
)

// fakeKernel records the calls netup makes, as short strings.
type fakeKernel struct {
	mu        sync.Mutex
	ls        []link
	calls     []string
	fail      map[string]error // by operation: "link up", "addr replace", ...
	hideFor   int              // links() shows lo only for this many calls
	noCarrier bool
}

func newFakeKernel() *fakeKernel {
	return &fakeKernel{ls: []link{
		{name: "lo", index: 1},
		{name: "eth0", index: 2, ethernet: true},
	}}
}

func (k *fakeKernel) record(op, args string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, op+" "+args)
	return k.fail[op]
}

// Calls returns the calls so far.
func (k *fakeKernel) Calls() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.calls)
}

func (k *fakeKernel) links() ([]link, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.hideFor > 0 {
		k.hideFor--
		return k.ls[:1], nil
	}
	return slices.Clone(k.ls), nil
}

func (k *fakeKernel) rename(dev, name string) error {
	if err := k.record("rename", dev+" "+name); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for i := range k.ls {
		if k.ls[i].name == dev {
			k.ls[i].name = name
		}
	}
	return nil
}

func (k *fakeKernel) linkUp(dev string) error {
	if err := k.record("link up", dev); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for i := range k.ls {
		if k.ls[i].name == dev {
			k.ls[i].up, k.ls[i].carrier = true, !k.noCarrier
		}
	}
	return nil
}

func (k *fakeKernel) addrReplace(dev string, addr netip.Prefix, lifetime time.Duration) error {
	life := "forever"
	if lifetime > 0 {
		life = lifetime.String()
	}
	return k.record("addr replace", fmt.Sprintf("%v dev %s lifetime %s", addr, dev, life))
}

func (k *fakeKernel) addrDel(dev string, addr netip.Prefix) error {
	return k.record("addr del", fmt.Sprintf("%v dev %s", addr, dev))
}

func (k *fakeKernel) routeReplace(r route) error {
	s := fmt.Sprintf("%v via %v dev %s", r.dst, r.gw, r.dev)
	if r.onlink {
		s += " onlink"
	}
	return k.record("route replace", s)
}

func (k *fakeKernel) setHostname(name string) error { return k.record("hostname", name) }

// fakeServer is a DHCP server behind the dhcpClient seam. Its fields can
// change while the leaser runs.
type fakeServer struct {
	mu         sync.Mutex
	addr       netip.Prefix
	lease      time.Duration // 0 sends no lease time
	down       bool          // answers nothing: the exchange times out
	nak        bool          // NAKs renew and rebind
	panicFirst bool          // the first request panics
	ops        []string      // "request", "renew", "rebind", in order
	dials      int
}

func newFakeServer() *fakeServer {
	return &fakeServer{addr: pfx("10.0.2.15/24"), lease: time.Hour}
}

func (s *fakeServer) set(f func(s *fakeServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *fakeServer) Ops() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ops)
}

func (s *fakeServer) dial(dev, hostname string, log *slog.Logger) (dhcpClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dials++
	return fakeClient{s}, nil
}

type fakeClient struct{ s *fakeServer }

func (c fakeClient) request(ctx context.Context) (*grant, error) {
	return c.s.answer(ctx, "request")
}

func (c fakeClient) renew(ctx context.Context, g *grant) (*grant, error) {
	return c.s.answer(ctx, "renew")
}

func (c fakeClient) rebind(ctx context.Context, g *grant) (*grant, error) {
	return c.s.answer(ctx, "rebind")
}

func (c fakeClient) close() error { return nil }

func (s *fakeServer) answer(ctx context.Context, op string) (*grant, error) {
	s.mu.Lock()
	s.ops = append(s.ops, op)
	down, nak := s.down, s.nak && op != "request"
	if op == "request" && s.panicFirst {
		s.panicFirst = false
		s.mu.Unlock()
		panic("fake server: boom")
	}
	ack := fakeAck(s.addr, s.lease)
	s.mu.Unlock()
	if down {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if nak {
		return nil, errNak
	}
	return &grant{offer: ack, ack: ack}, nil
}

// fakeAck is the ack of the QEMU user network for addr.
func fakeAck(addr netip.Prefix, lease time.Duration) *dhcpv4.DHCPv4 {
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(dhcpv4.MessageTypeAck),
		dhcpv4.WithYourIP(addr.Addr().AsSlice()),
		dhcpv4.WithNetmask(net.CIDRMask(addr.Bits(), 32)),
		dhcpv4.WithRouter(net.IPv4(10, 0, 2, 2)),
		dhcpv4.WithDNS(net.IPv4(10, 0, 2, 3)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 0, 2, 2))),
	}
	if lease > 0 {
		mods = append(mods, dhcpv4.WithLeaseTime(uint32(lease/time.Second)))
	}
	ack, err := dhcpv4.New(mods...)
	if err != nil {
		panic(err)
	}
	return ack
}

// newTestUpper returns an upper over a fake kernel and server, logging to
// the returned buffer and writing resolv.conf into a temporary directory.
func newTestUpper(t *testing.T) (*upper, *fakeKernel, *fakeServer, *testkit.LockedBuffer) {
	k, s, buf := newFakeKernel(), newFakeServer(), &testkit.LockedBuffer{}
	u := &upper{
		k:          k,
		dial:       s.dial,
		t:          defaultTimings,
		log:        slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		resolvConf: t.TempDir() + "/resolv.conf",
	}
	return u, k, s, buf
}

// count returns how many of calls start with prefix.
func count(calls []string, prefix string) int {
	n := 0
	for _, c := range calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}
