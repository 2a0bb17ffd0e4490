package netup

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

func sameConfig(a, b Config) bool {
	return a.Mode == b.Mode && a.Device == b.Device && a.Address == b.Address &&
		a.Gateway == b.Gateway && slices.Equal(a.DNS, b.DNS) && a.Hostname == b.Hostname
}

func TestParseIP(t *testing.T) {
	tests := []struct {
		in   string
		want Config
	}{
		{"", Config{Mode: ModeOff}},
		{"off", Config{Mode: ModeOff}},
		{"none", Config{Mode: ModeOff}},
		{"dhcp", Config{Mode: ModeDHCP}},
		{"on", Config{Mode: ModeDHCP}},
		{"any", Config{Mode: ModeDHCP}},
		{"both", Config{Mode: ModeDHCP}},
		// A bare client address is static, with the classful prefix length.
		{"10.0.2.15", Config{Mode: ModeStatic, Address: pfx("10.0.2.15/8")}},
		{"172.16.0.9", Config{Mode: ModeStatic, Address: pfx("172.16.0.9/16")}},
		{"192.168.1.5", Config{Mode: ModeStatic, Address: pfx("192.168.1.5/24")}},
		{"10.0.0.5/24", Config{Mode: ModeStatic, Address: pfx("10.0.0.5/24")}},
		{"10.0.0.5/32", Config{Mode: ModeStatic, Address: pfx("10.0.0.5/32")}},
		// The QEMU user network, in full.
		{"10.0.2.15::10.0.2.2:255.255.255.0:web1:eth0:off:10.0.2.3:1.1.1.1:10.0.2.2", Config{
			Mode: ModeStatic, Device: "eth0", Hostname: "web1",
			Address: pfx("10.0.2.15/24"), Gateway: ip("10.0.2.2"),
			DNS: []netip.Addr{ip("10.0.2.3"), ip("1.1.1.1")},
		}},
		{"10.0.2.15::10.0.2.2:255.255.255.0::eth0:none", Config{
			Mode: ModeStatic, Device: "eth0", Address: pfx("10.0.2.15/24"), Gateway: ip("10.0.2.2"),
		}},
		// Empty autoconf with a client address: static, as in the kernel.
		{"10.0.2.15::10.0.2.2:255.255.255.0", Config{
			Mode: ModeStatic, Address: pfx("10.0.2.15/24"), Gateway: ip("10.0.2.2"),
		}},
		// CIDR and a netmask that agree.
		{"10.0.0.5/16:::255.255.0.0", Config{Mode: ModeStatic, Address: pfx("10.0.0.5/16")}},
		// A /32 with a gateway outside it (Hetzner, OVH).
		{"203.0.113.7/32::172.31.1.1", Config{
			Mode: ModeStatic, Address: pfx("203.0.113.7/32"), Gateway: ip("172.31.1.1"),
		}},
		// 0.0.0.0 means "not given", as in the kernel.
		{"10.0.0.5:0.0.0.0:0.0.0.0:0.0.0.0", Config{Mode: ModeStatic, Address: pfx("10.0.0.5/8")}},
		{"::::::::1.1.1.1", Config{Mode: ModeDHCP, DNS: []netip.Addr{ip("1.1.1.1")}}},
		// No client address: DHCP unless autoconf says off.
		{":::::eth1", Config{Mode: ModeDHCP, Device: "eth1"}},
		{":::::eth1:", Config{Mode: ModeDHCP, Device: "eth1"}},
		{":::::eth1:dhcp", Config{Mode: ModeDHCP, Device: "eth1"}},
		{":::::eth1:off", Config{Mode: ModeOff, Device: "eth1"}},
		{"::::node-7::none", Config{Mode: ModeOff, Hostname: "node-7"}},
		// An explicit dhcp wins over a client address (the kernel would
		// use the address).
		{"10.0.0.5::::box.example.org:eth0:dhcp:9.9.9.9", Config{
			Mode: ModeDHCP, Device: "eth0", Hostname: "box.example.org",
			Address: pfx("10.0.0.5/8"), DNS: []netip.Addr{ip("9.9.9.9")},
		}},
		{"10.0.0.5::::::any", Config{Mode: ModeDHCP, Address: pfx("10.0.0.5/8")}},
		// server-ip and ntp0-ip are checked and dropped.
		{"10.0.0.5:10.0.0.1::::::::10.0.0.1", Config{Mode: ModeStatic, Address: pfx("10.0.0.5/8")}},
		// Link-local gateways exist at some providers.
		{"10.1.2.3/24::169.254.1.1", Config{Mode: ModeStatic, Address: pfx("10.1.2.3/24"), Gateway: ip("169.254.1.1")}},
		{"240.0.0.1", Config{Mode: ModeStatic, Address: pfx("240.0.0.1/32")}},
	}
	for _, tt := range tests {
		got, err := ParseIP(tt.in)
		if err != nil || !sameConfig(got, tt.want) {
			t.Errorf("ParseIP(%q) = %+v, %v, want %+v, nil", tt.in, got, err, tt.want)
		}
	}
}

func TestParseIPErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string // a fragment of the error
	}{
		{"10.0.2.15::10.0.2.x", `ip=: gateway "10.0.2.x": not an IPv4 address`},
		{"10.0.2.x", `ip=: client-ip "10.0.2.x": not an IPv4 address`},
		{"dhcp,foo", `ip=: client-ip "dhcp,foo": not an IPv4 address`},
		{"fe80::1", `ip=: client-ip "fe80": not an IPv4 address`},
		{"::ffff:10.0.0.1", `ip=: gateway "ffff": not an IPv4 address`},
		{"010.0.0.1", `client-ip "010.0.0.1": not an IPv4 address`},
		{"224.0.0.5", `client-ip "224.0.0.5": not a unicast address`},
		{"127.0.0.1", `client-ip "127.0.0.1": not a unicast address`},
		{"255.255.255.255", `client-ip "255.255.255.255": not a unicast address`},
		{"0.0.0.0/24", `client-ip "0.0.0.0/24": not a unicast address`},
		{"10.0.0.5/33", `client-ip "10.0.0.5/33": not an IPv4 address with a prefix length`},
		{"10.0.0.5/0", `client-ip "10.0.0.5/0": prefix length 0`},
		{"10.0.0.5/x", `client-ip "10.0.0.5/x": not an IPv4 address with a prefix length`},
		{"10.0.0.5:abc", `ip=: server-ip "abc": not an IPv4 address`},
		{"10.0.0.5::10.0.0.5", `gateway "10.0.0.5": same as client-ip`},
		{"10.0.0.5::224.0.0.1", `gateway "224.0.0.1": not a unicast address`},
		{"10.0.0.5:::255.0.255.0", `netmask "255.0.255.0": not a contiguous netmask`},
		{"10.0.0.5:::24", `netmask "24": not an IPv4 address`},
		{"10.0.0.5/24:::255.255.0.0", `netmask "255.255.0.0": is /16, but client-ip says /24`},
		{"10.0.0.5::::bad_host", `hostname "bad_host": want letters`},
		{"10.0.0.5::::-host", `hostname "-host": want letters`},
		{"10.0.0.5::::" + strings.Repeat("a", 65), `hostname "aaa`},
		{"10.0.0.5:::::eth0/1", `device "eth0/1": not a valid link name`},
		{"10.0.0.5:::::..", `device "..": not a valid link name`},
		{"10.0.0.5:::::a-very-long-name0", `device "a-very-long-name0": longer than 15 bytes`},
		{"10.0.0.5::::::dchp", `autoconf "dchp": want off, none, on, any, dhcp or both`},
		{"10.0.0.5::::::bootp", `autoconf "bootp": not supported (use dhcp)`},
		{"rarp", `ip=: autoconf "rarp": not supported`},
		{"10.0.0.5:::::::1.1.1", `dns0-ip "1.1.1": not an IPv4 address`},
		{"10.0.0.5::::::::255.255.255.255", `dns1-ip "255.255.255.255": not a unicast address`},
		{"10.0.0.5:::::::::1.2.3.4.5", `ntp0-ip "1.2.3.4.5": not an IPv4 address`},
		{"1:2:3:4:5:6:7:8:9:10:11", `ip=: 11 fields, want at most 10`},
	}
	for _, tt := range tests {
		got, err := ParseIP(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseIP(%q) = %+v, %v, want error containing %q", tt.in, got, err, tt.want)
		}
	}
}

func TestFormatIP(t *testing.T) {
	tests := []struct {
		in   Config
		want string
	}{
		{Config{}, "dhcp"},
		{Config{Mode: ModeOff}, "off"},
		{Config{Mode: ModeDHCP, Device: "eth1"}, ":::::eth1:dhcp"},
		{Config{Mode: ModeStatic, Address: pfx("10.0.0.5/24"), Gateway: ip("10.0.0.1"),
			DNS: []netip.Addr{ip("1.1.1.1")}, Hostname: "web1", Device: "eth0"},
			"10.0.0.5/24::10.0.0.1::web1:eth0:off:1.1.1.1"},
	}
	for _, tt := range tests {
		if got := formatIP(tt.in); got != tt.want {
			t.Errorf("formatIP(%+v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestModeString(t *testing.T) {
	for m, want := range map[Mode]string{ModeDHCP: "dhcp", ModeStatic: "static", ModeOff: "off", 7: "mode(7)"} {
		if got := m.String(); got != want {
			t.Errorf("Mode(%d).String() = %q, want %q", int(m), got, want)
		}
	}
}

// FuzzParseIP checks that ParseIP never panics, that what it accepts is a
// Config Up would accept, and that formatting it and parsing again gives
// the same Config.
func FuzzParseIP(f *testing.F) {
	for _, s := range []string{
		"", "dhcp", "off", "10.0.2.15", "10.0.0.5/24",
		"10.0.2.15::10.0.2.2:255.255.255.0:web1:eth0:off:10.0.2.3:1.1.1.1:10.0.2.2",
		":::::eth1:dhcp", "::::::::1.1.1.1", "203.0.113.7/32::172.31.1.1",
		"10.0.0.5/24:::255.255.0.0", "1:2:3:4:5:6:7:8:9:10:11",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseIP(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "ip=: ") {
				t.Fatalf("ParseIP(%q) error = %q, want it to start with %q", s, err, "ip=: ")
			}
			return
		}
		if err := checkConfig(c); err != nil {
			t.Fatalf("ParseIP(%q) = %+v, which checkConfig refuses: %v", s, c, err)
		}
		if c.Mode == ModeStatic && !c.Address.IsValid() {
			t.Fatalf("ParseIP(%q) = %+v, static without an address", s, c)
		}
		if c.Address.IsValid() && c.Gateway == c.Address.Addr() {
			t.Fatalf("ParseIP(%q) = %+v, gateway is the client address", s, c)
		}
		if len(c.DNS) > 2 {
			t.Fatalf("ParseIP(%q) = %+v, more than 2 DNS servers", s, c)
		}
		again, err := ParseIP(formatIP(c))
		if err != nil || !sameConfig(again, c) {
			t.Fatalf("ParseIP(formatIP(ParseIP(%q))) = %+v, %v, want %+v, nil (formatted %q)",
				s, again, err, c, formatIP(c))
		}
	})
}
