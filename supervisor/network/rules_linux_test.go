package network

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The table as data: the fixed NAT and filter rules, then one DNAT rule
// per published port, in the containers' order by name.
func TestRuleset(t *testing.T) {
	r := netip.MustParsePrefix("10.89.0.0/24")
	pubs := sortedPubs(map[string]Publish{
		"web":  {Name: "web", Addr: netip.MustParseAddr("10.89.0.2"), Ports: []Port{{Port: 80}, {Port: 443, Proto: "tcp"}}},
		"dns":  {Name: "dns", Addr: netip.MustParseAddr("10.89.0.3"), Ports: []Port{{Port: 53, Proto: "udp"}}},
		"bare": {Name: "bare", Addr: netip.MustParseAddr("10.89.0.4")},
	})
	rules := ruleset("allium0", r, pubs)
	var chainsOf []string
	for _, rule := range rules {
		chainsOf = append(chainsOf, rule.chain)
	}
	want := []string{"prerouting", "output", "postrouting", "forward", "forward", "forward", "forward", "ports", "ports", "ports"}
	if !slices.Equal(chainsOf, want) {
		t.Fatalf("ruleset chains = %v, want %v", chainsOf, want)
	}

	masq := rules[2].exprs
	if _, ok := masq[len(masq)-1].(*expr.Masq); !ok || !hasData(masq, []byte{10, 89, 0, 0}) || !hasData(masq, ifnameBytes("allium0")) {
		t.Errorf("postrouting rule = %v, want the range, the bridge and masquerade", masq)
	}
	if v, ok := rules[6].exprs[len(rules[6].exprs)-1].(*expr.Verdict); !ok || v.Kind != expr.VerdictDrop {
		t.Errorf("last forward rule ends in %v, want drop", rules[6].exprs)
	}

	for i, tt := range []struct {
		proto byte
		port  []byte
		addr  []byte
	}{
		{unix.IPPROTO_UDP, []byte{0, 53}, []byte{10, 89, 0, 3}}, // dns before web
		{unix.IPPROTO_TCP, []byte{0, 80}, []byte{10, 89, 0, 2}},
		{unix.IPPROTO_TCP, []byte{1, 187}, []byte{10, 89, 0, 2}},
	} {
		ex := rules[7+i].exprs
		nat, ok := ex[len(ex)-1].(*expr.NAT)
		if !ok || nat.Type != expr.NATTypeDestNAT || !hasData(ex, []byte{tt.proto}) || !hasData(ex, tt.port) || !hasData(ex, tt.addr) {
			t.Errorf("DNAT rule %d = %v, want proto %d port %v to %v", i, ex, tt.proto, tt.port, tt.addr)
		}
	}

	if got := ruleset("allium0", r, nil); len(got) != 7 {
		t.Errorf("ruleset with nothing published = %d rules, want the 7 fixed ones", len(got))
	}
}

func ifnameBytes(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}

// hasData reports whether a comparison or an immediate of ex holds b.
func hasData(ex []expr.Any, b []byte) bool {
	for _, e := range ex {
		switch e := e.(type) {
		case *expr.Cmp:
			if bytes.Equal(e.Data, b) {
				return true
			}
		case *expr.Immediate:
			if bytes.Equal(e.Data, b) {
				return true
			}
		}
	}
	return false
}

// Two containers may not publish the same port and protocol; the same
// number over another protocol, or the container's own again, is fine.
func TestConflict(t *testing.T) {
	pubs := map[string]Publish{"web": {Name: "web", Ports: []Port{{Port: 80}}}}
	tests := []struct {
		p    Publish
		want string
	}{
		{Publish{Name: "other", Ports: []Port{{Port: 80, Proto: "tcp"}}}, "80/tcp is published by web"},
		{Publish{Name: "other", Ports: []Port{{Port: 80, Proto: "udp"}}}, ""},
		{Publish{Name: "web", Ports: []Port{{Port: 80}}}, ""},
	}
	for _, tt := range tests {
		if got := conflict(tt.p, pubs); got != tt.want {
			t.Errorf("conflict(%+v) = %q, want %q", tt.p, got, tt.want)
		}
	}
}
