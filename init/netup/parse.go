package netup

import (
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"strings"
)

// ipFields names the colon-separated fields of ip=, in order, as error
// messages name them.
var ipFields = [...]string{
	"client-ip", "server-ip", "gateway", "netmask", "hostname",
	"device", "autoconf", "dns0-ip", "dns1-ip", "ntp0-ip",
}

var (
	errNotIPv4    = errors.New("not an IPv4 address")
	errNotUnicast = errors.New("not a unicast address")
)

// ParseIP parses the value of the kernel's ip= parameter
// (Documentation/admin-guide/nfs/nfsroot.rst):
//
//	<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>:<dns0-ip>:<dns1-ip>:<ntp0-ip>
//
// and the short forms "off" and "none" (ModeOff), "on", "any", "dhcp" and
// "both" (ModeDHCP). An empty value means off, as in the kernel.
//
// Fields may be empty or left off at the end. An address of 0.0.0.0 means
// "not given", as in the kernel. Our one extension: client-ip may carry its
// prefix length, "10.0.0.5/24", instead of a netmask. With neither, the
// prefix length is the classful default the kernel guesses: /8 below
// 128.0.0.0, /16 below 192.0.0.0, /24 below 224.0.0.0, and /32 above.
//
// autoconf picks the mode:
//   - on, any, dhcp or both: ModeDHCP. The kernel would use the static
//     address instead when client-ip is given; we honour the explicit word.
//     Device, hostname and the DNS servers still apply.
//   - off, none or empty, with a client-ip: ModeStatic.
//   - off or none without a client-ip: ModeOff.
//   - empty without a client-ip: ModeDHCP, as in the kernel.
//
// Where the kernel ignores what it cannot read, ParseIP refuses it: bad
// addresses, a non-contiguous netmask, an unknown autoconf word, bootp and
// rarp, more than ten fields. server-ip and ntp0-ip are checked and dropped.
// Errors name the field and the bad value:
//
//	ip=: gateway "10.0.2.x": not an IPv4 address
func ParseIP(s string) (Config, error) {
	switch s {
	case "", "off", "none":
		return Config{Mode: ModeOff}, nil
	case "on", "any", "dhcp", "both":
		return Config{Mode: ModeDHCP}, nil
	case "bootp", "rarp":
		return Config{}, fmt.Errorf("ip=: autoconf %q: %w", s, errUnsupportedProto)
	}
	fields := strings.Split(s, ":")
	if len(fields) > len(ipFields) {
		return Config{}, fmt.Errorf("ip=: %d fields, want at most %d (%s)",
			len(fields), len(ipFields), strings.Join(ipFields[:], ":"))
	}
	var p ipParser
	for i, v := range fields {
		if err := p.field(i, v); err != nil {
			return Config{}, fmt.Errorf("ip=: %s %q: %w", ipFields[i], v, err)
		}
	}
	return p.config(), nil
}

var errUnsupportedProto = errors.New("not supported (use dhcp)")

// ipParser collects the fields of ip= as they are read, in order.
type ipParser struct {
	c        Config
	client   netip.Addr
	bits     int // the prefix length from client-ip or netmask; 0 when not given
	autoconf string
}

// field reads field number i with value v.
func (p *ipParser) field(i int, v string) error {
	var err error
	switch i {
	case 0:
		p.client, p.bits, err = parseClient(v)
	case 1, 9: // server-ip (for NFS root) and ntp0-ip: checked, not used
		_, err = parseV4(v)
	case 2:
		p.c.Gateway, err = p.parseGateway(v)
	case 3:
		err = p.parseNetmask(v)
	case 4:
		err = checkHostname(v)
		p.c.Hostname = v
	case 5:
		err = checkDevice(v)
		p.c.Device = v
	case 6:
		err = checkAutoconf(v)
		p.autoconf = v
	case 7, 8:
		err = p.parseDNS(v)
	}
	return err
}

// config decides the mode and the prefix once every field is read.
func (p *ipParser) config() Config {
	c := p.c
	if p.client.IsValid() {
		if p.bits == 0 {
			p.bits = classfulBits(p.client)
		}
		c.Address = netip.PrefixFrom(p.client, p.bits)
	}
	switch p.autoconf {
	case "on", "any", "dhcp", "both":
		c.Mode = ModeDHCP
	case "off", "none":
		c.Mode = ModeOff
		if p.client.IsValid() {
			c.Mode = ModeStatic
		}
	default: // empty: the kernel autoconfigures unless client-ip is given
		c.Mode = ModeDHCP
		if p.client.IsValid() {
			c.Mode = ModeStatic
		}
	}
	return c
}

// parseV4 parses an optional IPv4 address. "" and 0.0.0.0 mean "not given"
// and return the zero Addr, as the kernel's in_aton does.
func parseV4(v string) (netip.Addr, error) {
	if v == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is4() {
		return netip.Addr{}, errNotIPv4
	}
	if a.IsUnspecified() {
		return netip.Addr{}, nil
	}
	return a, nil
}

// parseHost is parseV4 for an address a host can have (not multicast,
// loopback or broadcast).
func parseHost(v string) (netip.Addr, error) {
	a, err := parseV4(v)
	if err != nil || !a.IsValid() {
		return a, err
	}
	return a, checkHost(a)
}

func checkHost(a netip.Addr) error {
	if !a.IsGlobalUnicast() && !a.IsLinkLocalUnicast() {
		return errNotUnicast
	}
	return nil
}

// parseClient parses client-ip, with or without a prefix length.
func parseClient(v string) (netip.Addr, int, error) {
	if !strings.Contains(v, "/") {
		a, err := parseHost(v)
		return a, 0, err
	}
	p, err := netip.ParsePrefix(v)
	if err != nil || !p.Addr().Is4() {
		return netip.Addr{}, 0, errors.New("not an IPv4 address with a prefix length (e.g. 10.0.2.15/24)")
	}
	if p.Bits() == 0 {
		return netip.Addr{}, 0, errors.New("prefix length 0 (want 1 to 32)")
	}
	return p.Addr(), p.Bits(), checkHost(p.Addr())
}

func (p *ipParser) parseGateway(v string) (netip.Addr, error) {
	a, err := parseHost(v)
	if err == nil && a.IsValid() && a == p.client {
		return a, errors.New("same as client-ip")
	}
	return a, err
}

// parseNetmask reads a dotted netmask. It must agree with a prefix length
// given on client-ip.
func (p *ipParser) parseNetmask(v string) error {
	a, err := parseV4(v)
	if err != nil || !a.IsValid() { // 0.0.0.0 is "not given", so n > 0 below
		return err
	}
	n, ok := maskBits(a)
	if !ok {
		return errors.New("not a contiguous netmask")
	}
	if p.bits != 0 && p.bits != n {
		return fmt.Errorf("is /%d, but client-ip says /%d", n, p.bits)
	}
	p.bits = n
	return nil
}

// maskBits returns the length of a contiguous netmask.
func maskBits(a netip.Addr) (int, bool) {
	b := a.As4()
	m := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := bits.LeadingZeros32(^m)
	return n, m<<n == 0
}

// classfulBits is the prefix length the kernel guesses when no netmask is
// given (ic_defaults in net/ipv4/ipconfig.c).
func classfulBits(a netip.Addr) int {
	switch b := a.As4()[0]; {
	case b < 128:
		return 8
	case b < 192:
		return 16
	case b < 224:
		return 24
	}
	return 32
}

func (p *ipParser) parseDNS(v string) error {
	a, err := parseHost(v)
	if err == nil && a.IsValid() {
		p.c.DNS = append(p.c.DNS, a)
	}
	return err
}

func checkAutoconf(v string) error {
	switch v {
	case "", "off", "none", "on", "any", "dhcp", "both":
		return nil
	case "bootp", "rarp":
		return errUnsupportedProto
	}
	return errors.New("want off, none, on, any, dhcp or both")
}

// checkHostname accepts what sethostname and a DHCP server can take: up to
// 64 bytes of letters, digits, '-' and '.', starting with a letter or digit.
func checkHostname(h string) error {
	if len(h) > 64 {
		return errors.New("longer than 64 bytes")
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !isAlnum(c) && (i == 0 || c != '-' && c != '.') {
			return errors.New("want letters, digits, '-' and '.', starting with a letter or digit")
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// checkDevice accepts what the kernel accepts as a link name
// (dev_valid_name): at most 15 bytes, not "." or "..", no '/', ':' or space.
func checkDevice(d string) error {
	if len(d) > 15 {
		return errors.New("longer than 15 bytes")
	}
	if d == "." || d == ".." || strings.ContainsAny(d, "/: \t\n\v\f\r") {
		return errors.New("not a valid link name")
	}
	return nil
}

// formatIP renders c in the form ParseIP reads, for logs and round trips.
func formatIP(c Config) string {
	var f [9]string
	if c.Address.IsValid() {
		f[0] = c.Address.String()
	}
	if c.Gateway.IsValid() {
		f[2] = c.Gateway.String()
	}
	f[4], f[5] = c.Hostname, c.Device
	f[6] = c.Mode.String()
	if c.Mode == ModeStatic {
		f[6] = "off"
	}
	for i, a := range c.DNS[:min(len(c.DNS), 2)] {
		f[7+i] = a.String()
	}
	n := len(f)
	for n > 0 && f[n-1] == "" {
		n--
	}
	if n == 7 && strings.Join(f[:6], "") == "" {
		return f[6]
	}
	return strings.Join(f[:n], ":")
}
