package main

import (
	"allium/supervisor/isolation"
	"allium/supervisor/network"
)

// useNetwork gives the containers private networks where the probe
// found network namespaces and nftables: the bridge (allium0) on the
// range of allium.bridge= on the kernel command line, or
// network.DefaultRange. Nothing changes on the node yet: the bridge,
// forwarding and the nftables table are set up at the first container
// that asks for a private network (apps' placeNet), which is refused
// with the reason where this node cannot give one.
func (n *node) useNetwork(r isolation.Report) {
	if n.apps == nil {
		return
	}
	for _, c := range []string{"net", "nftables"} {
		if !r.Has(c) {
			n.apps.UseNetwork(nil, "this node's kernel lacks "+c)
			return
		}
	}
	opts := network.Options{}
	if s, ok := n.cmdline["allium.bridge"]; ok {
		rng, err := network.ParseRange(s)
		if err != nil {
			n.warn("kernel command line: allium.bridge=" + s + ": " + err.Error() + "; using " + network.DefaultRange.String())
		}
		opts.Range = rng
	}
	nw, err := network.New(opts)
	if err != nil {
		n.warn("private networks: " + err.Error())
		n.apps.UseNetwork(nil, err.Error())
		return
	}
	n.apps.UseNetwork(nw, "")
	n.log.Info("private networks", "bridge", nw.Bridge(), "range", nw.Range().String())
}
