package netup

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func ack(t *testing.T, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithMessageType(dhcpv4.MessageTypeAck)}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseAck(t *testing.T) {
	yi := dhcpv4.WithYourIP(net.IPv4(10, 0, 2, 15))
	tests := []struct {
		name string
		mods []dhcpv4.Modifier
		want leaseInfo
	}{
		{"QEMU user network", []dhcpv4.Modifier{yi,
			dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
			dhcpv4.WithRouter(net.IPv4(10, 0, 2, 2)),
			dhcpv4.WithDNS(net.IPv4(10, 0, 2, 3)),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 0, 2, 2))),
			dhcpv4.WithOption(dhcpv4.OptDomainName("example.org")),
			dhcpv4.WithOption(dhcpv4.OptHostName("guest")),
			dhcpv4.WithLeaseTime(86400)},
			leaseInfo{addr: pfx("10.0.2.15/24"), router: ip("10.0.2.2"), dns: []netip.Addr{ip("10.0.2.3")},
				domain: "example.org", server: ip("10.0.2.2"), hostname: "guest",
				dur: 24 * time.Hour, t1: 12 * time.Hour, t2: 21 * time.Hour}},
		{"no mask, no lease time: classful and forever", []dhcpv4.Modifier{yi},
			leaseInfo{addr: pfx("10.0.2.15/8")}},
		{"explicit T1 and T2", []dhcpv4.Modifier{yi, dhcpv4.WithLeaseTime(1000),
			dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(100 * time.Second)),
			dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(200 * time.Second))},
			leaseInfo{addr: pfx("10.0.2.15/8"), dur: 1000 * time.Second, t1: 100 * time.Second, t2: 200 * time.Second}},
		{"T2 before T1: defaults", []dhcpv4.Modifier{yi, dhcpv4.WithLeaseTime(1000),
			dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(300 * time.Second)),
			dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(200 * time.Second))},
			leaseInfo{addr: pfx("10.0.2.15/8"), dur: 1000 * time.Second, t1: 500 * time.Second, t2: 875 * time.Second}},
		{"a 1 s lease counts as minLease", []dhcpv4.Modifier{yi, dhcpv4.WithLeaseTime(1)},
			leaseInfo{addr: pfx("10.0.2.15/8"), dur: 20 * time.Second, t1: 10 * time.Second, t2: 17500 * time.Millisecond}},
		{"infinite lease", []dhcpv4.Modifier{yi, dhcpv4.WithLeaseTime(0xffffffff)},
			leaseInfo{addr: pfx("10.0.2.15/8")}},
		{"/32 with an outside router (GCP)", []dhcpv4.Modifier{dhcpv4.WithYourIP(net.IPv4(10, 128, 0, 5)),
			dhcpv4.WithNetmask(net.CIDRMask(32, 32)), dhcpv4.WithRouter(net.IPv4(10, 128, 0, 1))},
			leaseInfo{addr: pfx("10.128.0.5/32"), router: ip("10.128.0.1")}},
		{"bad mask, bad routers, bad DNS, unsafe domain", []dhcpv4.Modifier{yi,
			dhcpv4.WithNetmask(net.IPMask{255, 0, 255, 0}),
			dhcpv4.WithRouter(net.IPv4(10, 0, 2, 15), net.IPv4(224, 0, 0, 1), net.IPv4(10, 0, 0, 1)),
			dhcpv4.WithDNS(net.IPv4(127, 0, 0, 1), net.IPv4(0, 0, 0, 0), net.IPv4(8, 8, 8, 8)),
			dhcpv4.WithOption(dhcpv4.OptDomainName("evil.org\nnameserver 6.6.6.6"))},
			leaseInfo{addr: pfx("10.0.2.15/8"), router: ip("10.0.0.1"), dns: []netip.Addr{ip("8.8.8.8")}}},
	}
	for _, tt := range tests {
		got, err := parseAck(ack(t, tt.mods...), defaultTimings.minLease)
		if err != nil || !sameLeaseInfo(got, tt.want) {
			t.Errorf("%s: parseAck() = %+v, %v, want %+v, nil", tt.name, got, err, tt.want)
		}
	}
}

func sameLeaseInfo(a, b leaseInfo) bool {
	return a.addr == b.addr && a.router == b.router && slices.Equal(a.dns, b.dns) && a.domain == b.domain &&
		a.server == b.server && a.hostname == b.hostname && a.dur == b.dur && a.t1 == b.t1 && a.t2 == b.t2
}

func TestParseAckNoAddress(t *testing.T) {
	for _, yi := range []net.IP{nil, net.IPv4zero, net.IPv4bcast, net.IPv4(224, 0, 0, 1)} {
		if got, err := parseAck(ack(t, dhcpv4.WithYourIP(yi)), time.Second); err == nil {
			t.Errorf("parseAck(yiaddr %v) = %+v, nil, want an error", yi, got)
		}
	}
}
