package netup

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// leaseInfo is what a DHCPACK tells us, checked.
type leaseInfo struct {
	addr     netip.Prefix
	router   netip.Addr // zero: no default route
	dns      []netip.Addr
	domain   string // option 15, only if safe to write into resolv.conf
	server   netip.Addr
	hostname string        // option 12, logged and otherwise ignored
	dur      time.Duration // 0: no end
	t1, t2   time.Duration // renew and rebind, from the start of the lease
}

// infiniteLease is the lease time RFC 2131 uses for "forever".
const infiniteLease = 0xffffffff * time.Second

// parseAck reads a DHCPACK. A lease shorter than minLease counts as
// minLease, so a broken server cannot make the loop spin.
func parseAck(ack *dhcpv4.DHCPv4, minLease time.Duration) (leaseInfo, error) {
	ip, ok := addrFrom(ack.YourIPAddr)
	if !ok || checkHost(ip) != nil {
		return leaseInfo{}, fmt.Errorf("netup: dhcp: no usable address in the ack (yiaddr %v)", ack.YourIPAddr)
	}
	li := leaseInfo{
		addr:     netip.PrefixFrom(ip, ackBits(ack, ip)),
		router:   firstRouter(ack.Router(), ip),
		dns:      hostAddrs(ack.DNS()),
		server:   addrOrZero(ack.ServerIdentifier()),
		hostname: ack.HostName(),
	}
	if d := ack.DomainName(); validDomain(d) {
		li.domain = d
	}
	li.dur, li.t1, li.t2 = leaseTimes(ack, minLease)
	return li, nil
}

// ackBits is the prefix length from the subnet mask option, or the classful
// guess when the option is missing or not a usable mask.
func ackBits(ack *dhcpv4.DHCPv4, ip netip.Addr) int {
	if m, ok := addrFrom(net.IP(ack.SubnetMask())); ok {
		if n, ok := maskBits(m); ok && n > 0 {
			return n
		}
	}
	return classfulBits(ip)
}

// leaseTimes returns the lease time (0 for no end), T1 and T2. Missing or
// inconsistent T1 and T2 default to 1/2 and 7/8 of the lease.
func leaseTimes(ack *dhcpv4.DHCPv4, minLease time.Duration) (dur, t1, t2 time.Duration) {
	dur = ack.IPAddressLeaseTime(infiniteLease)
	if dur >= infiniteLease {
		return 0, 0, 0
	}
	dur = max(dur, minLease)
	t1 = ack.IPAddressRenewalTime(dur / 2)
	t2 = ack.IPAddressRebindingTime(dur * 7 / 8)
	if !(0 < t1 && t1 < t2 && t2 < dur) {
		t1, t2 = dur/2, dur*7/8
	}
	return dur, t1, t2
}

// firstRouter returns the first router that a host can have and that is
// not ip itself.
func firstRouter(rs []net.IP, ip netip.Addr) netip.Addr {
	for _, a := range hostAddrs(rs) {
		if a != ip {
			return a
		}
	}
	return netip.Addr{}
}

// hostAddrs keeps the IPv4 unicast addresses of ips.
func hostAddrs(ips []net.IP) []netip.Addr {
	var out []netip.Addr
	for _, ip := range ips {
		if a, ok := addrFrom(ip); ok && checkHost(a) == nil {
			out = append(out, a)
		}
	}
	return out
}

func addrFrom(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip.To4())
	return a, ok && !a.IsUnspecified()
}

func addrOrZero(ip net.IP) netip.Addr {
	if a, ok := addrFrom(ip); ok {
		return a
	}
	return netip.Addr{}
}
