package main

import (
	"fmt"
	"net"
	"strings"

	"allium/init/netup"
)

// netConfig is the network the kernel command line asks for: ip= (the
// kernel's syntax, netup.ParseIP) and dracut's ifname=NAME:MAC, which
// picks the link by its address and gives it NAME (install.sh passes
// the name and address the old system's link had). Without ip= it is
// DHCP on the first ethernet link. A bad value is named in a warning and
// left out: the node still comes up, on DHCP.
func netConfig(c cmdline) (netup.Config, []string) {
	var cfg netup.Config
	var warns []string
	if v, ok := c["ip"]; ok {
		p, err := netup.ParseIP(v)
		if err != nil {
			warns = append(warns, err.Error()+"; using DHCP")
		} else {
			cfg = p
		}
	}
	v, ok := c["ifname"]
	if !ok {
		return cfg, warns
	}
	name, mac, err := parseIfname(v)
	switch {
	case err != nil:
		warns = append(warns, "ifname="+v+": "+err.Error()+"; ignored")
	case cfg.Device != "" && cfg.Device != name:
		warns = append(warns, fmt.Sprintf("ifname=%s names %s, but ip= configures %s; ignored", v, name, cfg.Device))
	default:
		cfg.Device, cfg.MAC = name, mac
	}
	return cfg, warns
}

// parseIfname parses dracut's NAME:MAC (the MAC with its own colons).
func parseIfname(v string) (string, net.HardwareAddr, error) {
	name, m, ok := strings.Cut(v, ":")
	if !ok || name == "" {
		return "", nil, fmt.Errorf("want NAME:MAC")
	}
	if len(name) > 15 || strings.ContainsAny(name, "/ \t") {
		return "", nil, fmt.Errorf("%q is not a link name", name)
	}
	mac, err := net.ParseMAC(m)
	if err != nil || len(mac) != 6 {
		return "", nil, fmt.Errorf("%q is not an ethernet address", m)
	}
	return name, mac, nil
}
