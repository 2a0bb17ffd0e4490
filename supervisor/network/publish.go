package network

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Port is a port a container publishes on the node's addresses: the
// same number on the node as in the container.
type Port struct {
	Port uint16
	// Proto is "tcp" or "udp"; "" means tcp.
	Proto string
}

func (p Port) proto() string {
	if p.Proto == "" {
		return "tcp"
	}
	return p.Proto
}

func (p Port) String() string { return fmt.Sprintf("%d/%s", p.Port, p.proto()) }

// Publish is a container's place on the bridge: its address and the
// ports published to it.
type Publish struct {
	Name  string
	Addr  netip.Addr
	Ports []Port
}

// conflict says which of p's ports another of pubs already publishes:
// "" when none.
func conflict(p Publish, pubs map[string]Publish) string {
	for _, other := range sortedPubs(pubs) {
		if other.Name == p.Name {
			continue
		}
		for _, port := range p.Ports {
			if slices.ContainsFunc(other.Ports, func(o Port) bool { return o.Port == port.Port && o.proto() == port.proto() }) {
				return fmt.Sprintf("%v is published by %s", port, other.Name)
			}
		}
	}
	return ""
}

// sortedPubs is pubs by name: the rule set's order does not depend on
// the map's.
func sortedPubs(pubs map[string]Publish) []Publish {
	out := make([]Publish, 0, len(pubs))
	for _, p := range pubs {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Publish) int { return strings.Compare(a.Name, b.Name) })
	return out
}
