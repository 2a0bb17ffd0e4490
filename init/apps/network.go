package apps

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"allium/api"
	"allium/manifest"
	"allium/supervisor/isolation"
	"allium/supervisor/network"
)

// Private networks: a container whose manifest says isolation.network
// private gets an address of the node's range, chosen when it is added
// and kept in state.db for its life (across restarts, reboots and new
// images), freed when it is removed. The supervisor attaches each of its
// runs through netHook.

// UseNetwork gives the node private networks on n; a nil n says why
// it has none (why), which a container asking for one is told.
func (a *Service) UseNetwork(n *network.Network, why string) {
	if n == nil {
		a.noNet.Store(&why)
		return
	}
	a.net.Store(n)
}

// netHook is the supervisor's Network: the node's, once it has one.
type netHook struct{ a *Service }

func (h netHook) Attach(ctx context.Context, name string, pid int) error {
	n := h.a.net.Load()
	if n == nil {
		return errors.New("this node has no private networks")
	}
	return n.Attach(ctx, name, pid)
}

// placeNet is where a container with a private network goes on the
// bridge: the address it has (in state.db) or the next free one, and
// its ports, which no other container may publish. It refuses, naming
// what is missing, a node that cannot give private networks; it
// changes nothing but the bridge's setup (Setup, once). With the node's
// network (the default) it returns the zero Publish.
func (a *Service) placeNet(name string, m *manifest.Manifest, rung isolation.Rung) (network.Publish, error) {
	if m.Isolation.Network != "private" {
		return network.Publish{}, nil
	}
	n, err := a.privateNet(name, rung)
	if err != nil {
		return network.Publish{}, err
	}
	p := network.Publish{Name: name}
	for _, port := range m.Ports {
		p.Ports = append(p.Ports, network.Port{Port: uint16(port.Port), Proto: port.Protocol})
	}
	if err := n.Check(p); err != nil {
		return network.Publish{}, api.Conflict("%s: ports: %v", name, err)
	}
	if p.Addr, err = a.address(name, n.Range()); err != nil {
		return network.Publish{}, err
	}
	return p, nil
}

// privateNet is the node's network if it can give name a private one.
func (a *Service) privateNet(name string, rung isolation.Rung) (*network.Network, error) {
	refuse := func(format string, args ...any) error {
		return api.Conflict("%s: isolation.network private: %s; use host (the default)", name, fmt.Sprintf(format, args...))
	}
	iso := a.iso()
	if rung < isolation.Namespaces {
		return nil, refuse("it needs the namespaces rung, and this node runs containers at %s (%s)", rung, iso.Missing(isolation.Namespaces))
	}
	for _, check := range []string{"net", "nftables"} {
		if c, _ := iso.Check(check); !c.OK {
			why := c.Why
			if why == "" {
				why = "not tried"
			}
			return nil, refuse("this node's kernel lacks %s (%s: %s)", map[string]string{"net": "network namespaces", "nftables": "nftables"}[check], check, why)
		}
	}
	n := a.net.Load()
	if n == nil {
		why := "the node has not set its network up"
		if w := a.noNet.Load(); w != nil {
			why = *w
		}
		return nil, refuse("%s", why)
	}
	if err := n.Setup(); err != nil {
		return nil, refuse("the node's bridge cannot be set up: %v", err)
	}
	return n, nil
}

// address is name's address in r: the one state.db has for it, or the
// lowest that no other container has.
func (a *Service) address(name string, r netip.Prefix) (netip.Addr, error) {
	cs, err := a.db.Containers()
	if err != nil {
		return netip.Addr{}, err
	}
	var used []netip.Addr
	for _, c := range cs {
		addr, err := netip.ParseAddr(c.Address)
		switch {
		case err != nil:
		case c.Name != name:
			used = append(used, addr)
		case r.Contains(addr) && addr != network.Gateway(r):
			return addr, nil // its own, for its life
		}
	}
	addr, err := network.Next(r, used)
	if err != nil {
		return netip.Addr{}, api.Conflict("%s: isolation.network private: %v; remove a container with a private network, or give the node a larger range (allium.bridge=)", name, err)
	}
	return addr, nil
}

// dropNet takes name off the bridge, if it was on it.
func (a *Service) dropNet(name string) {
	if n := a.net.Load(); n != nil {
		if err := n.Remove(name); err != nil {
			a.log.Warn("apps: taking a container off the bridge", "container", name, "err", err)
		}
	}
}
