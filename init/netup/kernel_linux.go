package netup

import (
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// netlinkKernel is the kernel seam over rtnetlink. Each call opens its own
// socket in the calling thread's network namespace, which for PID 1 is the
// only one.
type netlinkKernel struct{}

func newKernel() kernel { return netlinkKernel{} }

func (netlinkKernel) links() ([]link, error) {
	ls, err := netlink.LinkList()
	if err != nil {
		// Includes netlink.ErrDumpInterrupted: callers poll again.
		return nil, err
	}
	out := make([]link, 0, len(ls))
	for _, l := range ls {
		a := l.Attrs()
		out = append(out, link{
			name:     a.Name,
			index:    a.Index,
			ethernet: a.EncapType == "ether" && (l.Type() == "device" || l.Type() == "veth"),
			mac:      a.HardwareAddr,
			up:       a.Flags&net.FlagUp != 0,
			carrier:  a.RawFlags&unix.IFF_RUNNING != 0,
		})
	}
	return out, nil
}

func (netlinkKernel) rename(dev, name string) error {
	l, err := netlink.LinkByName(dev)
	if err != nil {
		return err
	}
	return netlink.LinkSetName(l, name)
}

func (netlinkKernel) linkUp(dev string) error {
	l, err := netlink.LinkByName(dev)
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(l)
}

func (netlinkKernel) addrReplace(dev string, addr netip.Prefix, lifetime time.Duration) error {
	l, err := netlink.LinkByName(dev)
	if err != nil {
		return err
	}
	a := &netlink.Addr{IPNet: ipNet(addr)}
	if lifetime > 0 {
		// Whole seconds, at least 1; 0 would mean "expired".
		secs := int(min(max(lifetime/time.Second, 1), 0xfffffffe))
		a.ValidLft, a.PreferedLft = secs, secs
	}
	return netlink.AddrReplace(l, a)
}

func (netlinkKernel) addrDel(dev string, addr netip.Prefix) error {
	l, err := netlink.LinkByName(dev)
	if err != nil {
		return err
	}
	return netlink.AddrDel(l, &netlink.Addr{IPNet: ipNet(addr)})
}

func (netlinkKernel) routeReplace(r route) error {
	l, err := netlink.LinkByName(r.dev)
	if err != nil {
		return err
	}
	nr := &netlink.Route{LinkIndex: l.Attrs().Index, Gw: r.gw.AsSlice()}
	if r.dst.Bits() > 0 {
		nr.Dst = ipNet(r.dst)
	}
	if r.onlink {
		nr.Flags = int(netlink.FLAG_ONLINK)
	}
	return netlink.RouteReplace(nr)
}

func (netlinkKernel) setHostname(name string) error {
	return unix.Sethostname([]byte(name))
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{
		IP:   p.Addr().AsSlice(),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}
}
