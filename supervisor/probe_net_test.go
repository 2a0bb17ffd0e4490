package supervisor

import (
	"net/netip"
	"testing"
)

func TestProbeAt(t *testing.T) {
	addr := netip.MustParseAddr("10.89.0.7")
	tests := []struct{ in, want Probe }{
		{TCPProbe{Addr: "127.0.0.1:8080"}, TCPProbe{Addr: "10.89.0.7:8080"}},
		{HTTPProbe{URL: "http://127.0.0.1:8080/health?x=1"}, HTTPProbe{URL: "http://10.89.0.7:8080/health?x=1"}},
		{HTTPProbe{URL: "http://localhost/"}, HTTPProbe{URL: "http://10.89.0.7/"}},
		{HTTPProbe{URL: "http://example.org/"}, HTTPProbe{URL: "http://example.org/"}},
		{nil, nil},
	}
	for _, tt := range tests {
		if got := ProbeAt(tt.in, addr); got != tt.want {
			t.Errorf("ProbeAt(%#v, %v) = %#v, want %#v", tt.in, addr, got, tt.want)
		}
	}
}
