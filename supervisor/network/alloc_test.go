package network

import (
	"errors"
	"net/netip"
	"testing"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestNext(t *testing.T) {
	r := netip.MustParsePrefix("10.89.0.0/24")
	tests := []struct {
		used []netip.Addr
		want string
	}{
		{nil, "10.89.0.2"}, // .0 is the network, .1 the bridge
		{addrs("10.89.0.2"), "10.89.0.3"},
		{addrs("10.89.0.3", "10.89.0.2", "10.89.0.5"), "10.89.0.4"}, // a freed address is reused
		{addrs("192.168.1.2"), "10.89.0.2"},                         // outside the range: ignored
	}
	for _, tt := range tests {
		got, err := Next(r, tt.used)
		if err != nil || got.String() != tt.want {
			t.Errorf("Next(%v, %v) = %v, %v, want %s", r, tt.used, got, err, tt.want)
		}
	}
}

// The broadcast address is never handed out, and a full range says so.
func TestNextExhausted(t *testing.T) {
	r := netip.MustParsePrefix("10.1.2.0/29") // .2-.6 for containers
	used := addrs("10.1.2.2", "10.1.2.3", "10.1.2.4", "10.1.2.5")
	got, err := Next(r, used)
	if err != nil || got.String() != "10.1.2.6" {
		t.Fatalf("Next(%v, 4 used) = %v, %v, want 10.1.2.6", r, got, err)
	}
	if got, err := Next(r, append(used, got)); !errors.Is(err, ErrExhausted) {
		t.Errorf("Next(%v, all used) = %v, %v, want ErrExhausted", r, got, err)
	}
}

func TestParseRange(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"10.89.0.0/24", "10.89.0.0/24"},
		{"10.200.3.7/16", "10.200.0.0/16"},
		{"172.30.0.0/29", "172.30.0.0/29"},
	} {
		if got, err := ParseRange(tt.in); err != nil || got.String() != tt.want {
			t.Errorf("ParseRange(%q) = %v, %v, want %s", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "10.89.0.0", "fd00::/64", "10.0.0.0/8", "10.0.0.0/30", "x/24"} {
		if got, err := ParseRange(bad); !errors.Is(err, ErrBadRange) {
			t.Errorf("ParseRange(%q) = %v, %v, want ErrBadRange", bad, got, err)
		}
	}
}

func TestHostLink(t *testing.T) {
	a, b := HostLink("web"), HostLink("a-very-long-container-name-of-sixty-three-characters-or-so")
	if len(a) > 15 || len(b) > 15 || a == b || a != HostLink("web") {
		t.Errorf("HostLink: %q, %q: want distinct, stable names of at most 15 characters", a, b)
	}
}

func TestMAC(t *testing.T) {
	if got := MAC(netip.MustParseAddr("10.89.0.2")).String(); got != "02:a1:0a:59:00:02" {
		t.Errorf("MAC(10.89.0.2) = %s, want 02:a1:0a:59:00:02", got)
	}
}
