package netup

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestUpStatic(t *testing.T) {
	u, k, _, _ := newTestUpper(t)
	cfg := Config{
		Mode:     ModeStatic,
		Address:  pfx("10.0.2.15/24"),
		Gateway:  ip("10.0.2.2"),
		DNS:      []netip.Addr{ip("10.0.2.3"), ip("1.1.1.1")},
		Hostname: "web1.example.org",
	}
	st, err := u.up(context.Background(), cfg)
	if err != nil {
		t.Fatalf("up(%+v) error = %v, want nil", cfg, err)
	}
	wantCalls := []string{
		"link up lo",
		"hostname web1",
		"link up eth0",
		"addr replace 10.0.2.15/24 dev eth0 lifetime forever",
		"route replace 0.0.0.0/0 via 10.0.2.2 dev eth0",
	}
	if got := k.Calls(); !slices.Equal(got, wantCalls) {
		t.Errorf("up(%+v) kernel calls = %q, want %q", cfg, got, wantCalls)
	}
	wantState := State{Source: "static", Interface: "eth0", Address: cfg.Address, Gateway: cfg.Gateway,
		DNS: cfg.DNS, Hostname: "web1"}
	if !sameState(st, wantState) {
		t.Errorf("up(%+v) = %+v, want %+v", cfg, st, wantState)
	}
	wantConf := "# Written by allium netup (static on eth0).\nnameserver 10.0.2.3\nnameserver 1.1.1.1\n"
	if got := readFile(t, u.resolvConf); got != wantConf {
		t.Errorf("resolv.conf = %q, want %q", got, wantConf)
	}
}

func sameState(a, b State) bool {
	return a.Source == b.Source && a.Interface == b.Interface && a.Address == b.Address &&
		a.Gateway == b.Gateway && slices.Equal(a.DNS, b.DNS) && a.Hostname == b.Hostname &&
		a.Server == b.Server && a.Lease == b.Lease
}

// A /32 with its gateway outside, as Hetzner and OVH hand out, needs an
// on-link route; a named device is used even if it is not the first.
func TestUpStaticOnlink(t *testing.T) {
	u, k, _, _ := newTestUpper(t)
	k.ls = append(k.ls, link{name: "eth1", index: 3, ethernet: true})
	cfg := Config{Mode: ModeStatic, Device: "eth1", Address: pfx("203.0.113.7/32"), Gateway: ip("172.31.1.1")}
	if _, err := u.up(context.Background(), cfg); err != nil {
		t.Fatalf("up(%+v) error = %v, want nil", cfg, err)
	}
	wantCalls := []string{
		"link up lo",
		"link up eth1",
		"addr replace 203.0.113.7/32 dev eth1 lifetime forever",
		"route replace 0.0.0.0/0 via 172.31.1.1 dev eth1 onlink",
	}
	if got := k.Calls(); !slices.Equal(got, wantCalls) {
		t.Errorf("up(%+v) kernel calls = %q, want %q", cfg, got, wantCalls)
	}
	want := "# Written by allium netup (static on eth1).\n# No DNS servers were given.\n"
	if got := readFile(t, u.resolvConf); got != want {
		t.Errorf("resolv.conf = %q, want %q", got, want)
	}
}

func TestUpStaticNoGateway(t *testing.T) {
	u, k, _, _ := newTestUpper(t)
	u.resolvConf = ""
	cfg := Config{Mode: ModeStatic, Address: pfx("192.168.7.2/24")}
	st, err := u.up(context.Background(), cfg)
	if err != nil {
		t.Fatalf("up(%+v) error = %v, want nil", cfg, err)
	}
	if got := count(k.Calls(), "route"); got != 0 {
		t.Errorf("up(%+v) made %d route calls, want 0", cfg, got)
	}
	if st.Gateway.IsValid() || st.DNS != nil {
		t.Errorf("up(%+v) = %+v, want no gateway and no DNS", cfg, st)
	}
}

func TestUpStaticErrors(t *testing.T) {
	cfg := Config{Mode: ModeStatic, Address: pfx("10.0.2.15/24"), Gateway: ip("10.0.2.2")}
	tests := []struct {
		op   string
		want string
	}{
		{"link up", "netup: set lo up: boom"},
		{"addr replace", "netup: add 10.0.2.15/24 to eth0: boom"},
		{"route replace", "netup: add default route via 10.0.2.2 to eth0: boom"},
	}
	for _, tt := range tests {
		u, k, _, _ := newTestUpper(t)
		k.fail = map[string]error{tt.op: errors.New("boom")}
		_, err := u.up(context.Background(), cfg)
		if err == nil || err.Error() != tt.want {
			t.Errorf("up(%+v) with %s failing: error = %v, want %q", cfg, tt.op, err, tt.want)
		}
	}
}

func TestUpResolvConfError(t *testing.T) {
	u, _, _, _ := newTestUpper(t)
	u.resolvConf = t.TempDir() + "/missing/resolv.conf"
	cfg := Config{Mode: ModeStatic, Address: pfx("10.0.2.15/24")}
	st, err := u.up(context.Background(), cfg)
	if err == nil || !strings.HasPrefix(err.Error(), "netup: write "+u.resolvConf+": ") {
		t.Errorf("up(%+v) error = %v, want netup: write %s: ...", cfg, err, u.resolvConf)
	}
	if st.Address != cfg.Address {
		t.Errorf("up(%+v) state = %+v, want the address it applied", cfg, st)
	}
}

// A failing sethostname is logged; the network still comes up.
func TestUpHostnameError(t *testing.T) {
	u, k, _, logs := newTestUpper(t)
	k.fail = map[string]error{"hostname": errors.New("operation not permitted")}
	cfg := Config{Mode: ModeStatic, Address: pfx("10.0.2.15/24"), Hostname: "web1"}
	st, err := u.up(context.Background(), cfg)
	if err != nil || st.Hostname != "" {
		t.Errorf("up(%+v) = %+v, %v, want no hostname and no error", cfg, st, err)
	}
	if !strings.Contains(logs.String(), "operation not permitted") {
		t.Errorf("log = %q, want the hostname error", logs)
	}
}

func TestUpOff(t *testing.T) {
	u, k, _, _ := newTestUpper(t)
	st, err := u.up(context.Background(), Config{Mode: ModeOff, Hostname: "box"})
	want := []string{"link up lo", "hostname box"}
	if got := k.Calls(); err != nil || !slices.Equal(got, want) {
		t.Errorf("up(off) = %v, calls %q, want nil, calls %q", err, got, want)
	}
	if st.Source != "off" || st.Hostname != "box" {
		t.Errorf("up(off) = %+v, want Source off and Hostname box", st)
	}
	if _, err := os.Stat(u.resolvConf); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("up(off) wrote %s (stat: %v), want no file", u.resolvConf, err)
	}
}

func TestUpBadConfig(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Mode: 9}, "netup: config: unknown mode mode(9)"},
		{Config{Mode: ModeStatic}, "netup: config: address invalid Prefix: want an IPv4 address"},
		{Config{Mode: ModeStatic, Address: pfx("fd00::1/64")}, "netup: config: address fd00::1/64: want an IPv4"},
		{Config{Mode: ModeStatic, Address: pfx("10.0.0.1/24"), Gateway: ip("fd00::1")},
			"netup: config: gateway fd00::1: not an IPv4 address"},
		{Config{DNS: []netip.Addr{ip("224.0.0.1")}}, "netup: config: dns 224.0.0.1: not a unicast address"},
		{Config{Device: "a/b"}, `netup: config: device "a/b": not a valid link name`},
		{Config{Hostname: "a b"}, `netup: config: hostname "a b": want letters`},
	}
	for _, tt := range tests {
		u, k, _, _ := newTestUpper(t)
		_, err := u.up(context.Background(), tt.cfg)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("up(%+v) error = %v, want %q...", tt.cfg, err, tt.want)
		}
		if calls := k.Calls(); len(calls) != 0 {
			t.Errorf("up(%+v) made kernel calls %q, want none", tt.cfg, calls)
		}
	}
}

// The NIC driver loads asynchronously: Up waits for the link.
func TestUpLinkAppearsLate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u, k, _, _ := newTestUpper(t)
		k.hideFor = 30 // 3 s of polls
		cfg := Config{Mode: ModeStatic, Address: pfx("10.0.2.15/24")}
		st, err := u.up(context.Background(), cfg)
		if err != nil || st.Interface != "eth0" {
			t.Errorf("up(%+v) = %+v, %v, want eth0, nil", cfg, st, err)
		}
	})
}

func TestUpNoLink(t *testing.T) {
	tests := []struct {
		dev  string
		want string
	}{
		{"", "netup: wait for an ethernet link: no network link: timed out after 10s"},
		{"eth9", "netup: wait for link eth9: no network link: timed out after 10s"},
	}
	for _, tt := range tests {
		synctest.Test(t, func(t *testing.T) {
			u, k, _, _ := newTestUpper(t)
			k.ls = k.ls[:1]
			cfg := Config{Mode: ModeStatic, Device: tt.dev, Address: pfx("10.0.2.15/24")}
			_, err := u.up(context.Background(), cfg)
			if !errors.Is(err, ErrNoLink) || err.Error() != tt.want {
				t.Errorf("up(%+v) error = %v, want %q (ErrNoLink)", cfg, err, tt.want)
			}
		})
	}
}

func TestUpNoCarrier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u, k, _, logs := newTestUpper(t)
		k.noCarrier = true
		cfg := Config{Mode: ModeStatic, Address: pfx("10.0.2.15/24")}
		if _, err := u.up(context.Background(), cfg); err != nil {
			t.Errorf("up(%+v) without carrier: error = %v, want nil", cfg, err)
		}
		if !strings.Contains(logs.String(), "no carrier yet") {
			t.Errorf("log = %q, want a no-carrier warning", logs)
		}
	})
}

func TestUpCancelled(t *testing.T) {
	u, k, _, _ := newTestUpper(t)
	k.ls = k.ls[:1]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := u.up(ctx, Config{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("up(cancelled ctx) error = %v, want context.Canceled", err)
	}
}

func TestPickLink(t *testing.T) {
	ls := []link{
		{name: "lo", index: 1},
		{name: "br0", index: 5},
		{name: "eth1", index: 4, ethernet: true},
		{name: "eth0", index: 3, ethernet: true},
	}
	ls[2].mac = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 4}
	ls[3].mac = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 3}
	tests := []struct {
		dev  string
		mac  net.HardwareAddr
		want string
	}{
		{"", nil, "eth0"},
		{"eth1", nil, "eth1"},
		{"br0", nil, "br0"},
		{"eth7", nil, ""},
		{"", ls[2].mac, "eth1"},
		{"eth0", ls[2].mac, "eth1"}, // the address decides; the name is given after
		{"eth0", net.HardwareAddr{0x52, 0x54, 0, 0, 0, 9}, ""},
	}
	for _, tt := range tests {
		if got := pickLink(ls, tt.dev, tt.mac); got != tt.want {
			t.Errorf("pickLink(ls, %q, %v) = %q, want %q", tt.dev, tt.mac, got, tt.want)
		}
	}
}

// ifname=ens3:MAC with ip=...:ens3:...: the link with that address,
// named otherwise by this kernel, is renamed before it goes up.
func TestUpByMAC(t *testing.T) {
	u, k, _, _ := newTestUpper(t)
	mac := net.HardwareAddr{0x52, 0x54, 0, 0xa1, 0x1d, 2}
	k.ls = append(k.ls, link{name: "eth1", index: 3, ethernet: true, mac: mac})
	cfg := Config{Mode: ModeStatic, Device: "ens3", MAC: mac, Address: pfx("10.77.0.2/24"), Gateway: ip("10.77.0.1")}
	st, err := u.up(context.Background(), cfg)
	if err != nil {
		t.Fatalf("up(%+v) error = %v, want nil", cfg, err)
	}
	wantCalls := []string{
		"link up lo",
		"rename eth1 ens3",
		"link up ens3",
		"addr replace 10.77.0.2/24 dev ens3 lifetime forever",
		"route replace 0.0.0.0/0 via 10.77.0.1 dev ens3",
	}
	if got := k.Calls(); !slices.Equal(got, wantCalls) {
		t.Errorf("up(%+v) kernel calls = %q, want %q", cfg, got, wantCalls)
	}
	if st.Interface != "ens3" {
		t.Errorf("up(%+v) = %+v, want interface ens3", cfg, st)
	}
}
