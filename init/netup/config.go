package netup

import (
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Mode says how the link gets its address.
type Mode int

const (
	// ModeDHCP asks a DHCPv4 server. It is the zero value.
	ModeDHCP Mode = iota
	// ModeStatic applies Config.Address, Gateway and DNS as given.
	ModeStatic
	// ModeOff brings up lo only.
	ModeOff
)

// String returns "dhcp", "static", "off", or "mode(N)" for anything else.
func (m Mode) String() string {
	switch m {
	case ModeDHCP:
		return sourceDHCP
	case ModeStatic:
		return sourceStatic
	case ModeOff:
		return sourceOff
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// The values of State.Source.
const (
	sourceDHCP   = "dhcp"
	sourceStatic = "static"
	sourceOff    = "off"
)

// Config is what the kernel command line (or baked config) asks for. The
// zero Config means DHCP on the first ethernet link.
type Config struct {
	// Mode is how the link gets its address. The zero value is ModeDHCP.
	Mode Mode
	// Device names the link to configure, e.g. "eth0". "" means the first
	// ethernet link (lowest index, not lo).
	Device string
	// MAC, when set, picks the link by its hardware address instead, and
	// gives it the name Device when Device is set (dracut's
	// ifname=NAME:MAC): the installer names the link the old system
	// configured, whose name this kernel need not give it.
	MAC net.HardwareAddr
	// Address is the client address with its prefix length. Used in
	// ModeStatic only, where it is required.
	Address netip.Prefix
	// Gateway is the default router. The zero value adds no default route.
	// Used in ModeStatic only. A gateway outside Address gets an on-link
	// route, as /32 VPS setups need.
	Gateway netip.Addr
	// DNS lists name servers for resolv.conf. In ModeStatic nil writes a
	// resolv.conf that says none were given. In ModeDHCP a non-empty list
	// replaces the servers the DHCP server offers, as the kernel does.
	DNS []netip.Addr
	// Hostname, if not "", becomes the kernel's hostname (the part before
	// the first dot, as the kernel's ip= does). It is also sent to the DHCP
	// server. "" leaves the hostname alone.
	Hostname string
}

// State describes what Up configured.
type State struct {
	// Source is "static", "dhcp" or "off".
	Source string
	// Interface is the configured link, e.g. "eth0". "" when Source is "off".
	Interface string
	// Address is the link's address. Zero when off, or when DHCP has no
	// lease yet.
	Address netip.Prefix
	// Gateway is the default route's router. Zero when there is none.
	Gateway netip.Addr
	// DNS lists the name servers written to resolv.conf. Nil when none.
	DNS []netip.Addr
	// Hostname is the hostname Up set. "" when it set none.
	Hostname string
	// Server is the DHCP server that granted the lease. Zero otherwise.
	Server netip.Addr
	// Lease is the DHCP lease time. Zero for static and off, and for a lease
	// without an end.
	Lease time.Duration
}
