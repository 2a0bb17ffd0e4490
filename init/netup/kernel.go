package netup

import (
	"net"
	"net/netip"
	"time"
)

// kernel is the seam between netup and the kernel's network state. The
// Linux implementation talks netlink; tests use a recording fake. Methods
// return bare errors: the callers add the operation and the link.
type kernel interface {
	// links lists the links, in index order.
	links() ([]link, error)
	// rename gives a link that is down another name.
	rename(dev, name string) error
	// linkUp sets a link administratively up.
	linkUp(dev string) error
	// addrReplace adds addr to dev, or refreshes it. A lifetime of 0 means
	// forever; otherwise the kernel drops the address when it runs out.
	addrReplace(dev string, addr netip.Prefix, lifetime time.Duration) error
	// addrDel removes addr from dev.
	addrDel(dev string, addr netip.Prefix) error
	// routeReplace adds r, or replaces the route to the same destination.
	routeReplace(r route) error
	// setHostname sets the kernel's hostname.
	setHostname(name string) error
}

// link is what netup needs to know about a network link.
type link struct {
	name     string
	index    int
	ethernet bool // an ethernet device or veth, not lo, a bridge or a tunnel
	mac      net.HardwareAddr
	up       bool // administratively up (IFF_UP)
	carrier  bool // IFF_RUNNING: carrier, and the kernel has activated the link (linkwatch)
}

// route is a unicast route through dev.
type route struct {
	dev    string
	dst    netip.Prefix
	gw     netip.Addr
	onlink bool // gw is outside every prefix on dev; reach it on the link anyway
}

// defaultRoute is the route to 0.0.0.0/0 through gw on dev. Onlink is set
// when gw lies outside the link's address, as /32 VPS setups need.
func defaultRoute(dev string, addr netip.Prefix, gw netip.Addr) route {
	return route{
		dev:    dev,
		dst:    netip.PrefixFrom(netip.IPv4Unspecified(), 0),
		gw:     gw,
		onlink: !addr.Masked().Contains(gw),
	}
}
