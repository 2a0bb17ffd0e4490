package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"

	"allium/internal/safe"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Options configure a Network. The zero value is the node's defaults.
type Options struct {
	// Bridge is the bridge's name; "" means DefaultBridge.
	Bridge string
	// Range is where the containers' addresses come from (ParseRange);
	// the zero value means DefaultRange.
	Range netip.Prefix
	// NetNS is the node's network namespace, an open /proc/PID/ns/net
	// or bind mount of one, where the bridge and the rules live; 0
	// means the caller's (PID 1's: the node's). Tests give one they
	// made.
	NetNS int
}

// Network is the node's private networks: the bridge, its range, the
// containers placed on it (Add) and attached (Attach), and the nftables
// table that NATs them. Its methods are safe for concurrent use.
type Network struct {
	bridge string
	rng    netip.Prefix
	ns     int

	mu       sync.Mutex
	up       bool
	pubs     map[string]Publish // by container name: Add
	attached map[string]bool    // whose ports are in the table
}

// New returns the Network of opts; it changes nothing on the node
// until Setup or the first Attach.
func New(opts Options) (*Network, error) {
	n := &Network{bridge: opts.Bridge, rng: opts.Range, ns: opts.NetNS, pubs: map[string]Publish{}, attached: map[string]bool{}}
	if n.bridge == "" {
		n.bridge = DefaultBridge
	}
	if len(n.bridge) > 15 {
		return nil, fmt.Errorf("network: bridge name %q: longer than 15 characters", n.bridge)
	}
	if !n.rng.IsValid() {
		n.rng = DefaultRange
	}
	r, err := ParseRange(n.rng.String())
	if err != nil {
		return nil, err
	}
	n.rng = r
	return n, nil
}

// Range is the range the containers' addresses come from.
func (n *Network) Range() netip.Prefix { return n.rng }

// Bridge is the bridge's name.
func (n *Network) Bridge() string { return n.bridge }

// Setup makes the node ready for private networks, idempotently: the
// bridge with the range's first address, up; IPv4 forwarding on; the
// nftables table. It also creates and deletes a veth pair, so that a
// kernel without veth is found now and not at a container's start.
func (n *Network) Setup() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.setup()
}

func (n *Network) setup() error {
	if n.up {
		return nil
	}
	h, err := n.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	if err := n.makeBridge(h); err != nil {
		return err
	}
	if err := checkVeth(h); err != nil {
		return err
	}
	if err := n.forwarding(); err != nil {
		return err
	}
	if err := n.apply(); err != nil {
		return err
	}
	n.up = true
	return nil
}

// makeBridge creates the bridge if it is not there, gives it the
// gateway's address and brings it up.
func (n *Network) makeBridge(h *netlink.Handle) error {
	br, err := h.LinkByName(n.bridge)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		err = h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: n.bridge, HardwareAddr: MAC(Gateway(n.rng))}})
		if err != nil {
			return fmt.Errorf("network: create bridge %s: %w (is the bridge module loaded?)", n.bridge, err)
		}
		br, err = h.LinkByName(n.bridge)
	}
	if err != nil {
		return fmt.Errorf("network: bridge %s: %w", n.bridge, err)
	}
	gw := netip.PrefixFrom(Gateway(n.rng), n.rng.Bits())
	if err := h.AddrReplace(br, &netlink.Addr{IPNet: ipNet(gw)}); err != nil {
		return fmt.Errorf("network: address %s on %s: %w", gw, n.bridge, err)
	}
	if err := h.LinkSetUp(br); err != nil {
		return fmt.Errorf("network: set %s up: %w", n.bridge, err)
	}
	return nil
}

// checkVeth creates a veth pair and deletes it.
func checkVeth(h *netlink.Handle) error {
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "alcheck0"}, PeerName: "alcheck1"}
	h.LinkDel(v) // a pair left by a crash
	if err := h.LinkAdd(v); err != nil {
		return fmt.Errorf("network: create a veth pair: %w (is the veth module loaded?)", err)
	}
	return h.LinkDel(v)
}

// forwarding turns IPv4 forwarding on in the node's namespace:
// containers' packets are routed out through the node.
func (n *Network) forwarding() error {
	const f = "/proc/sys/net/ipv4/ip_forward"
	return n.inNS(func() error {
		if err := os.WriteFile(f, []byte("1\n"), 0); err != nil {
			return fmt.Errorf("network: turn forwarding on: %w", err)
		}
		return nil
	})
}

// Check reports whether p could be Added: its ports are free.
func (n *Network) Check(p Publish) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if why := conflict(p, n.pubs); why != "" {
		return fmt.Errorf("%w: %s", ErrPortTaken, why)
	}
	return nil
}

// Add places a container on the bridge at p.Addr, with p.Ports
// published once it is attached; it replaces the container's earlier
// place. The kernel is not touched: Attach does that for each run.
func (n *Network) Add(p Publish) error {
	if !n.rng.Contains(p.Addr) || p.Addr == Gateway(n.rng) {
		return fmt.Errorf("network: %s: address %v is not a container's address of %s", p.Name, p.Addr, n.rng)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if why := conflict(p, n.pubs); why != "" {
		return fmt.Errorf("%w: %s", ErrPortTaken, why)
	}
	n.pubs[p.Name] = p
	return nil
}

// Remove takes a container off the bridge: its ports out of the table,
// its veth pair deleted (it is gone already if its namespace is).
func (n *Network) Remove(name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.pubs, name)
	was := n.attached[name]
	delete(n.attached, name)
	if !n.up {
		return nil
	}
	h, err := n.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	if l, err := h.LinkByName(HostLink(name)); err == nil {
		h.LinkDel(l)
	}
	if !was {
		return nil
	}
	return n.apply()
}

// Attach gives the network namespace of pid (a run of the container
// name, Added before) its side of the bridge: a veth pair whose node
// end is on the bridge and whose other end is the namespace's eth0,
// with the container's address and a default route through the bridge;
// lo up; and the container's ports in the table. A veth left by an
// earlier run, whose namespace is still being torn down, is replaced.
func (n *Network) Attach(ctx context.Context, name string, pid int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.pubs[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknown, name)
	}
	if err := n.setup(); err != nil {
		return err
	}
	if err := n.attach(p, pid); err != nil {
		return fmt.Errorf("network: attach %s (pid %d): %w", name, pid, err)
	}
	n.attached[name] = true
	if err := n.apply(); err != nil {
		return fmt.Errorf("network: publish the ports of %s: %w", name, err)
	}
	return nil
}

func (n *Network) attach(p Publish, pid int) error {
	cns, err := netns.GetFromPid(pid)
	if err != nil {
		return fmt.Errorf("open its network namespace: %w", err)
	}
	defer cns.Close()
	h, err := n.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	host := HostLink(p.Name)
	if old, err := h.LinkByName(host); err == nil {
		h.LinkDel(old)
	}
	br, err := h.LinkByName(n.bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", n.bridge, err)
	}
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: host, MasterIndex: br.Attrs().Index},
		PeerName:  "eth0", PeerNamespace: netlink.NsFd(cns), PeerHardwareAddr: MAC(p.Addr),
	}
	if err := h.LinkAdd(veth); err != nil {
		h.LinkDel(veth)
		return fmt.Errorf("create veth %s: %w", host, err)
	}
	if err := h.LinkSetUp(veth); err != nil {
		h.LinkDel(veth)
		return fmt.Errorf("set %s up: %w", host, err)
	}
	if err := n.inside(cns, p.Addr); err != nil {
		h.LinkDel(veth)
		return err
	}
	return nil
}

// inside configures the container's side: lo up, eth0 with addr and
// up, the default route through the bridge.
func (n *Network) inside(cns netns.NsHandle, addr netip.Addr) error {
	h, err := netlink.NewHandleAt(cns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink in the container: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	eth, err := h.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("eth0: %w", err)
	}
	if err := h.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(addr, n.rng.Bits()))}); err != nil {
		return fmt.Errorf("address %s on eth0: %w", addr, err)
	}
	if err := h.LinkSetUp(eth); err != nil {
		return fmt.Errorf("set eth0 up: %w", err)
	}
	gw := Gateway(n.rng).AsSlice()
	if err := h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: net.IP(gw)}); err != nil {
		return fmt.Errorf("default route via %s: %w", Gateway(n.rng), err)
	}
	return nil
}

// apply writes the table for the attached containers.
func (n *Network) apply() error {
	var pubs []Publish
	for _, p := range sortedPubs(n.pubs) {
		if n.attached[p.Name] {
			pubs = append(pubs, p)
		}
	}
	conn, err := n.nft()
	if err != nil {
		return err
	}
	if err := writeTable(conn, ruleset(n.bridge, n.rng, pubs)); err != nil {
		return fmt.Errorf("network: nftables table %s: %w", tableName, err)
	}
	return nil
}

// handle is a netlink handle in the node's namespace.
func (n *Network) handle() (*netlink.Handle, error) {
	var h *netlink.Handle
	var err error
	// Route sockets only: a handle of every family fails where the
	// kernel lacks one (xfrm: EPROTONOSUPPORT on the appliance).
	if n.ns > 0 {
		h, err = netlink.NewHandleAt(netns.NsHandle(n.ns), unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, fmt.Errorf("network: netlink: %w", err)
	}
	return h, nil
}

// nft is an nftables connection in the node's namespace.
func (n *Network) nft() (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if n.ns > 0 {
		opts = append(opts, nftables.WithNetNSFd(n.ns))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("network: nftables: %w", err)
	}
	return c, nil
}

// inNS runs f on a thread of its own in the node's namespace (f's files
// in /proc/sys/net are that namespace's), and puts the thread back in
// the caller's namespace after. A thread that cannot go back is thrown
// away (left locked, it ends with the goroutine); a thread that ends
// kills the children it forked with a parent-death signal, so threads
// are not thrown away lightly.
func (n *Network) inNS(f func() error) error {
	if n.ns <= 0 {
		return f()
	}
	done := make(chan error, 1)
	safe.Go(slog.Default(), "network: in the node's namespace", func() {
		err := errors.New("network: panic in the node's namespace")
		defer func() { done <- err }()
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			err = fmt.Errorf("network: this thread's namespace: %w", err)
			return
		}
		defer orig.Close()
		if err = netns.Set(netns.NsHandle(n.ns)); err != nil {
			runtime.UnlockOSThread()
			err = fmt.Errorf("network: setns: %w", err)
			return
		}
		err = f()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
	})
	return <-done
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
}
