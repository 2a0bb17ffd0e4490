package main

import (
	"testing"

	"allium/rootfs"
)

func TestFDReserve(t *testing.T) {
	for _, tc := range []struct{ nofile, want uint64 }{{1 << 20, 1 << 17}, {4096, 1024}, {1024, 512}, {65536, 8192}} {
		if got := fdReserve(tc.nofile); got != tc.want {
			t.Errorf("fdReserve(%d) = %d, want %d", tc.nofile, got, tc.want)
		}
	}
}

func TestAPILimits(t *testing.T) {
	n := &node{nofile: 4096, cfg: rootfs.NodeConfig{Connections: rootfs.ConnConfig{Max: 100, PerSource: 5}}}
	tcp, onion := n.apiLimits()
	if tcp.Conns != 100 || tcp.PerSource != 5 || tcp.MaxFD != 3072 {
		t.Errorf("apiLimits() TCP = %+v, want 100 conns, 5 per source, no descriptor above 3072", tcp)
	}
	if onion.PerSource >= 0 || onion.MaxFD != 3072 || onion.Conns != 100 {
		t.Errorf("apiLimits() onion = %+v, want no per-source cap (all from tor), the same descriptors and cap", onion)
	}
	if got := n.onionStreams(); got != defaultOnionStreams {
		t.Errorf("onionStreams() = %d, want %d", got, defaultOnionStreams)
	}
}
