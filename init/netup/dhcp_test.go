package netup

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// startDHCP runs up in DHCP mode inside a synctest bubble and returns its
// result and a stop function that cancels the lease loop and waits for it.
func startDHCP(t *testing.T, u *upper, cfg Config) (State, error, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	st, err := u.up(ctx, cfg)
	return st, err, func() {
		cancel()
		synctest.Wait()
	}
}

func TestDHCPBind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u, k, _, _ := newTestUpper(t)
		st, err, stop := startDHCP(t, u, Config{})
		defer stop()
		want := State{Source: "dhcp", Interface: "eth0", Address: pfx("10.0.2.15/24"), Gateway: ip("10.0.2.2"),
			DNS: []netip.Addr{ip("10.0.2.3")}, Server: ip("10.0.2.2"), Lease: time.Hour}
		if err != nil || !sameState(st, want) {
			t.Fatalf("up(dhcp) = %+v, %v, want %+v, nil", st, err, want)
		}
		wantCalls := []string{
			"link up lo",
			"link up eth0",
			"addr replace 10.0.2.15/24 dev eth0 lifetime 1h0m0s",
			"route replace 0.0.0.0/0 via 10.0.2.2 dev eth0",
		}
		if got := k.Calls(); !slices.Equal(got, wantCalls) {
			t.Errorf("up(dhcp) kernel calls = %q, want %q", got, wantCalls)
		}
		wantConf := "# Written by allium netup (dhcp on eth0 from 10.0.2.2).\nnameserver 10.0.2.3\n"
		if got := readFile(t, u.resolvConf); got != wantConf {
			t.Errorf("resolv.conf = %q, want %q", got, wantConf)
		}
	})
}

// DNS servers from the config replace the server's, as the kernel's ip=
// does with dns0-ip and dns1-ip.
func TestDHCPConfigDNS(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u, _, _, _ := newTestUpper(t)
		cfg := Config{DNS: []netip.Addr{ip("9.9.9.9")}}
		st, err, stop := startDHCP(t, u, cfg)
		defer stop()
		if err != nil || !slices.Equal(st.DNS, cfg.DNS) {
			t.Errorf("up(%+v) = %+v, %v, want DNS %v", cfg, st, err, cfg.DNS)
		}
		want := "# Written by allium netup (dhcp on eth0 from 10.0.2.2).\nnameserver 9.9.9.9\n"
		if got := readFile(t, u.resolvConf); got != want {
			t.Errorf("resolv.conf = %q, want %q", got, want)
		}
	})
}

func TestDHCPRenewsAtT1(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u, k, s, _ := newTestUpper(t)
		_, err, stop := startDHCP(t, u, Config{})
		defer stop()
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(30*time.Minute - time.Second)
		synctest.Wait()
		if got := s.Ops(); !slices.Equal(got, []string{"request"}) {
			t.Errorf("server ops before T1 = %q, want [request]", got)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := s.Ops(); !slices.Equal(got, []string{"request", "renew"}) {
			t.Errorf("server ops after T1 = %q, want [request renew]", got)
		}
		// The renewal refreshes the address's lifetime.
		if got := count(k.Calls(), "addr replace 10.0.2.15/24 dev eth0 lifetime 1h0m0s"); got != 2 {
			t.Errorf("addr replace calls after renewal = %d, want 2 (calls %q)", got, k.Calls())
		}
		// And the next one comes 30 minutes later.
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		if got := count(s.Ops(), "renew"); got != 2 {
			t.Errorf("renewals after 61 min = %d, want 2", got)
		}
	})
}

// When the server goes away, the lease loop renews until T2, rebinds until
// the lease ends, removes the address, and then retries DORA forever.
func TestDHCPServerGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u, k, s, _ := newTestUpper(t)
		_, err, stop := startDHCP(t, u, Config{})
		defer stop()
		if err != nil {
			t.Fatal(err)
		}
		s.set(func(s *fakeServer) { s.down = true })
		time.Sleep(time.Hour + time.Second)
		synctest.Wait()
		ops := s.Ops()
		renews, rebinds := count(ops, "renew"), count(ops, "rebind")
		if renews < 2 || rebinds < 2 {
			t.Errorf("server ops = %q, want at least 2 renews, then 2 rebinds", ops)
		}
		if i := slices.Index(ops, "rebind"); i < 0 || slices.Contains(ops[i:], "renew") {
			t.Errorf("server ops = %q, want every renew before the first rebind", ops)
		}
		if got := count(k.Calls(), "addr del 10.0.2.15/24 dev eth0"); got != 1 {
			t.Errorf("addr del calls at the end of the lease = %d, want 1 (calls %q)", got, k.Calls())
		}
		// Hours later it is still trying, with pauses of at most a minute
		// and some seconds.
		before := count(s.Ops(), "request")
		time.Sleep(3 * time.Hour)
		synctest.Wait()
		if n := count(s.Ops(), "request") - before; n < 100 {
			t.Errorf("DORA tries in 3 hours without a server = %d, want at least 100", n)
		}
		// The server comes back: the address comes back.
		s.set(func(s *fakeServer) { s.down = false })
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if got := count(k.Calls(), "addr replace 10.0.2.15/24"); got != 2 {
			t.Errorf("addr replace calls after the server came back = %d, want 2 (calls %q)", got, k.Calls())
		}
	})
}

// A NAK on renewal removes the address before the new one goes on: removing
// a primary address afterwards would take a new secondary in the same
// subnet with it.
func TestDHCPNakNewAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u, k, s, _ := newTestUpper(t)
		_, err, stop := startDHCP(t, u, Config{})
		defer stop()
		if err != nil {
			t.Fatal(err)
		}
		s.set(func(s *fakeServer) { s.nak, s.addr = true, pfx("10.0.2.16/24") })
		time.Sleep(31 * time.Minute)
		synctest.Wait()
		calls := k.Calls()
		want := []string{
			"addr del 10.0.2.15/24 dev eth0",
			"addr replace 10.0.2.16/24 dev eth0 lifetime 1h0m0s",
			"route replace 0.0.0.0/0 via 10.0.2.2 dev eth0",
		}
		if i := slices.Index(calls, want[0]); i < 0 || !slices.Equal(calls[i:], want) {
			t.Errorf("kernel calls after a NAK = %q, want them to end with %q", calls, want)
		}
	})
}

// A renewal that hands out a different address replaces it in place.
func TestDHCPRenewNewAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u, k, s, _ := newTestUpper(t)
		_, err, stop := startDHCP(t, u, Config{})
		defer stop()
		if err != nil {
			t.Fatal(err)
		}
		s.set(func(s *fakeServer) { s.addr = pfx("10.0.3.9/24") })
		time.Sleep(31 * time.Minute)
		synctest.Wait()
		calls := k.Calls()
		want := []string{
			"addr del 10.0.2.15/24 dev eth0",
			"addr replace 10.0.3.9/24 dev eth0 lifetime 1h0m0s",
		}
		if i := slices.Index(calls, want[0]); i < 0 || !slices.Equal(calls[i:i+2], want) {
			t.Errorf("kernel calls after a new address = %q, want %q in a row", calls, want)
		}
	})
}

// Up gives up waiting after 15 s, but the lease loop goes on, redials its
// client after failures, and binds when a server answers.
func TestDHCPNoLeaseYet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u, k, s, _ := newTestUpper(t)
		s.set(func(s *fakeServer) { s.down = true })
		st, err, stop := startDHCP(t, u, Config{})
		defer stop()
		if !errors.Is(err, ErrNoLease) || !strings.Contains(err.Error(), "no lease within 15s (last error: ") {
			t.Errorf("up(dhcp, no server) error = %v, want ErrNoLease with the last error", err)
		}
		if st.Source != "dhcp" || st.Interface != "eth0" || st.Address.IsValid() {
			t.Errorf("up(dhcp, no server) = %+v, want dhcp on eth0 without an address", st)
		}
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		s.mu.Lock()
		dials := s.dials
		s.mu.Unlock()
		if dials < 2 {
			t.Errorf("dials after 5 minutes of failures = %d, want at least 2", dials)
		}
		s.set(func(s *fakeServer) { s.down = false })
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if got := count(k.Calls(), "addr replace 10.0.2.15/24"); got != 1 {
			t.Errorf("addr replace calls once the server answers = %d, want 1", got)
		}
	})
}

// A panic in the lease loop is logged, and the loop starts over.
func TestDHCPPanicRestarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u, k, s, logs := newTestUpper(t)
		s.set(func(s *fakeServer) { s.panicFirst = true })
		_, err, stop := startDHCP(t, u, Config{})
		defer stop()
		if !errors.Is(err, ErrNoLease) {
			t.Errorf("up(dhcp, panicking client) error = %v, want ErrNoLease", err)
		}
		if !strings.Contains(logs.String(), "fake server: boom") {
			t.Errorf("log = %q, want the panic", logs)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if got := count(k.Calls(), "addr replace 10.0.2.15/24"); got != 1 {
			t.Errorf("addr replace calls after the restart = %d, want 1", got)
		}
	})
}

// A lease without an end is applied without a lifetime and never renewed.
func TestDHCPInfiniteLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u, k, s, _ := newTestUpper(t)
		s.set(func(s *fakeServer) { s.lease = 0 })
		st, err, stop := startDHCP(t, u, Config{})
		defer stop()
		if err != nil || st.Lease != 0 {
			t.Errorf("up(dhcp, infinite lease) = %+v, %v, want Lease 0", st, err)
		}
		time.Sleep(48 * time.Hour)
		synctest.Wait()
		if got := s.Ops(); !slices.Equal(got, []string{"request"}) {
			t.Errorf("server ops over 48 h = %q, want [request]", got)
		}
		if got := count(k.Calls(), "addr replace 10.0.2.15/24 dev eth0 lifetime forever"); got != 1 {
			t.Errorf("calls = %q, want one addr replace without a lifetime", k.Calls())
		}
	})
}

func TestRetryPause(t *testing.T) {
	d := &leaser{t: defaultTimings}
	tests := []struct{ left, want time.Duration }{
		{20 * time.Minute, 10 * time.Minute},
		{90 * time.Second, time.Minute},
		{30 * time.Second, 30 * time.Second},
		{0, 0},
	}
	for _, tt := range tests {
		if got := d.retryPause(tt.left); got != tt.want {
			t.Errorf("retryPause(%v) = %v, want %v", tt.left, got, tt.want)
		}
	}
}

func TestJitter(t *testing.T) {
	for range 1000 {
		if got := jitter(10 * time.Second); got < 8*time.Second || got > 12*time.Second {
			t.Fatalf("jitter(10s) = %v, want within 8s..12s", got)
		}
	}
}
