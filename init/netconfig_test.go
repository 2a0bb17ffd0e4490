package main

import (
	"slices"
	"testing"
)

func TestNetConfig(t *testing.T) {
	for _, tc := range []struct {
		line     string
		dev, mac string
		static   bool
		warn     string
	}{
		{"", "", "", false, ""},
		{"ip=10.77.0.2::10.77.0.1:255.255.255.0::ens3:off ifname=ens3:52:54:00:a1:1d:02", "ens3", "52:54:00:a1:1d:02", true, ""},
		{"ip=:::::ens3:dhcp ifname=ens3:52:54:00:a1:1d:02", "ens3", "52:54:00:a1:1d:02", false, ""},
		{"ifname=wan:52:54:00:a1:1d:02", "wan", "52:54:00:a1:1d:02", false, ""},
		{"ip=10.77.0.2::10.77.0.1:255.255.255.0::eth0:off ifname=ens3:52:54:00:a1:1d:02", "eth0", "", true,
			"ifname=ens3:52:54:00:a1:1d:02 names ens3, but ip= configures eth0; ignored"},
		{"ifname=ens3", "", "", false, "ifname=ens3: want NAME:MAC; ignored"},
		{"ifname=ens3:zz:54:00:a1:1d:02", "", "", false, `ifname=ens3:zz:54:00:a1:1d:02: "zz:54:00:a1:1d:02" is not an ethernet address; ignored`},
		{"ifname=a/b:52:54:00:a1:1d:02", "", "", false, `ifname=a/b:52:54:00:a1:1d:02: "a/b" is not a link name; ignored`},
		{"ip=10.0.0.x", "", "", false, `ip=: client-ip "10.0.0.x": not an IPv4 address; using DHCP`},
	} {
		cfg, warns := netConfig(parseCmdline(tc.line))
		var wantWarns []string
		if tc.warn != "" {
			wantWarns = []string{tc.warn}
		}
		mac := ""
		if cfg.MAC != nil {
			mac = cfg.MAC.String()
		}
		if cfg.Device != tc.dev || mac != tc.mac || (cfg.Address.IsValid()) != tc.static || !slices.Equal(warns, wantWarns) {
			t.Errorf("netConfig(%q) = device %q mac %q static %v warnings %q; want %q %q %v %q",
				tc.line, cfg.Device, mac, cfg.Address.IsValid(), warns, tc.dev, tc.mac, tc.static, wantWarns)
		}
	}
}
