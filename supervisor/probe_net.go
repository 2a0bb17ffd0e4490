package supervisor

import (
	"net"
	"net/netip"
	"net/url"
)

// ProbeAt is p aimed at addr, a container's address on the node's
// bridge, in place of the node's loopback: a workload with a private
// network listens in its own namespace, which the node's 127.0.0.1 does
// not reach. A TCP probe dials addr at its port; an HTTP probe whose
// host is 127.0.0.1 or localhost asks addr. Anything else is p as it
// is.
func ProbeAt(p Probe, addr netip.Addr) Probe {
	switch p := p.(type) {
	case TCPProbe:
		if _, port, err := net.SplitHostPort(p.Addr); err == nil {
			return TCPProbe{Addr: net.JoinHostPort(addr.String(), port)}
		}
	case HTTPProbe:
		u, err := url.Parse(p.URL)
		if err != nil || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost") {
			return p
		}
		port := u.Port()
		u.Host = addr.String()
		if port != "" {
			u.Host = net.JoinHostPort(addr.String(), port)
		}
		return HTTPProbe{URL: u.String()}
	}
	return p
}
