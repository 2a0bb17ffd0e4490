package network

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
)

// DefaultRange is the node-local range containers get their addresses
// from when the node names none (allium.bridge= on the kernel command
// line): see doc.go for why this one.
var DefaultRange = netip.MustParsePrefix("10.89.0.0/24")

// DefaultBridge is the name of the node's bridge.
const DefaultBridge = "allium0"

// ParseRange reads a range as allium.bridge= gives it ("10.89.0.0/24";
// the host bits are ignored): IPv4, from /16 (65533 containers) to /29
// (5).
func ParseRange(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w: %q: %v (e.g. 10.89.0.0/24)", ErrBadRange, s, err)
	}
	if !p.Addr().Is4() || p.Bits() < 16 || p.Bits() > 29 {
		return netip.Prefix{}, fmt.Errorf("%w: %q: want an IPv4 range from /16 to /29 (e.g. 10.89.0.0/24)", ErrBadRange, s)
	}
	return p.Masked(), nil
}

// Gateway is the bridge's own address in r: its first host address.
// Containers route through it.
func Gateway(r netip.Prefix) netip.Addr { return r.Masked().Addr().Next() }

// Next is the lowest free address of r for a container: not the
// network's address, not the gateway, not the broadcast address, and
// none of used. It is pure: the caller keeps the addresses in use
// (state.db) and records the one it takes.
func Next(r netip.Prefix, used []netip.Addr) (netip.Addr, error) {
	r = r.Masked()
	taken := map[netip.Addr]bool{Gateway(r): true}
	for _, a := range used {
		taken[a] = true
	}
	for a := Gateway(r).Next(); r.Contains(a) && r.Contains(a.Next()); a = a.Next() {
		if !taken[a] {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w %s (%d in use)", ErrExhausted, r, len(used))
}

// MAC is the hardware address of the interface that has addr on the
// bridge: 02:a1 (locally administered, unicast) and the four bytes of
// the address. A container's eth0 keeps its MAC across runs, and the
// bridge its own whatever ports come and go, so no neighbour's ARP
// cache goes stale when a container restarts with a new veth pair.
func MAC(addr netip.Addr) net.HardwareAddr {
	a := addr.As4()
	return net.HardwareAddr{0x02, 0xa1, a[0], a[1], a[2], a[3]}
}

// HostLink is the name of a container's veth end on the node's side:
// "al" and 12 hex digits of the name's SHA-256, within the kernel's 15
// characters whatever the name's length, and the same for every run.
func HostLink(name string) string {
	sum := sha256.Sum256([]byte(name))
	return "al" + hex.EncodeToString(sum[:6])
}
