package netup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"allium/internal/safe"
)

// timings are the waits and retries of Up and of the lease loop. Tests
// shrink them or run them under testing/synctest.
type timings struct {
	poll        time.Duration // how often to look at the links
	linkWait    time.Duration // for the link to appear
	carrierWait time.Duration // for carrier after link up; then go on without
	firstLease  time.Duration // how long Up waits for the first lease
	attempt     time.Duration // one DHCP exchange: DORA, renew or rebind
	retryMin    time.Duration // the first pause after a failed DORA
	retryMax    time.Duration // the longest pause between DORAs
	renewMin    time.Duration // the shortest pause between renew or rebind tries
	minLease    time.Duration // shorter leases count as this long
}

var defaultTimings = timings{
	poll:        100 * time.Millisecond,
	linkWait:    10 * time.Second,
	carrierWait: 3 * time.Second,
	firstLease:  15 * time.Second,
	attempt:     10 * time.Second,
	retryMin:    time.Second,
	retryMax:    time.Minute,
	renewMin:    time.Minute, // RFC 2131 section 4.4.5
	minLease:    20 * time.Second,
}

// Up brings up lo and the configured (or first ethernet) link, sets the
// hostname if cfg has one, applies cfg, and writes resolvConf (normally
// "/etc/resolv.conf"; "" writes no file). In ModeOff it brings up lo only.
//
// In ModeDHCP, Up starts a goroutine that keeps the lease until ctx is
// cancelled: it renews at T1, rebinds at T2, starts over when the lease is
// lost, re-applies the address, route and resolv.conf when they change, and
// retries forever with backoff while no server answers. Cancelling ctx stops
// it and leaves the address in place until its lifetime runs out.
//
// Up returns once the link has an address, and a State describing it. If
// no lease comes within 15 s, Up returns an error wrapping ErrNoLease, but
// the lease loop goes on and applies a lease when one comes. Other errors
// leave no goroutine behind; State then holds what was configured before
// the failure. Nil log discards the log.
func Up(ctx context.Context, cfg Config, resolvConf string, log *slog.Logger) (State, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u := &upper{k: newKernel(), dial: dialDHCP, t: defaultTimings, log: log, resolvConf: resolvConf}
	return u.up(ctx, cfg)
}

// upper carries what Up needs, so tests can swap the kernel and the DHCP
// client.
type upper struct {
	k          kernel
	dial       func(dev, hostname string, log *slog.Logger) (dhcpClient, error)
	t          timings
	log        *slog.Logger
	resolvConf string
}

func (u *upper) up(ctx context.Context, cfg Config) (State, error) {
	if err := checkConfig(cfg); err != nil {
		return State{}, err
	}
	u.log.Info("netup: configuring", "ip", formatIP(cfg))
	if err := u.k.linkUp("lo"); err != nil {
		return State{}, fmt.Errorf("netup: set lo up: %w", err)
	}
	host := u.setHostname(cfg.Hostname)
	if cfg.Mode == ModeOff {
		return State{Source: sourceOff, Hostname: host}, nil
	}
	dev, err := u.waitLink(ctx, cfg.Device, cfg.MAC)
	if err != nil {
		return State{Source: cfg.Mode.String(), Hostname: host}, err
	}
	if err := u.bringUp(ctx, dev); err != nil {
		return State{Source: cfg.Mode.String(), Interface: dev, Hostname: host}, err
	}
	var st State
	if cfg.Mode == ModeStatic {
		st, err = u.static(dev, cfg)
	} else {
		st, err = u.dhcp(ctx, dev, cfg)
	}
	st.Hostname = host
	return st, err
}

// setHostname sets the first label of name as the hostname, as the
// kernel's ip= does, and returns it. A failure is logged, not returned: it
// does not stop the network.
func (u *upper) setHostname(name string) string {
	if name == "" {
		return ""
	}
	name, _, _ = strings.Cut(name, ".")
	if err := u.k.setHostname(name); err != nil {
		u.log.Error("netup: set hostname", "hostname", name, "err", err)
		return ""
	}
	return name
}

// waitLink polls until dev exists, or when dev is "", until an ethernet
// link does, and returns its name. With mac it waits for the link with
// that address instead, and renames it dev (when dev is set).
func (u *upper) waitLink(ctx context.Context, dev string, mac net.HardwareAddr) (string, error) {
	var name string
	err := u.poll(ctx, u.t.linkWait, func() (bool, error) {
		ls, err := u.k.links()
		name = pickLink(ls, dev, mac)
		return name != "", err
	})
	what := "an ethernet link"
	switch {
	case mac != nil:
		what = "the link with address " + mac.String()
	case dev != "":
		what = "link " + dev
	}
	if err == nil && mac != nil && dev != "" && name != dev {
		if err := u.k.rename(name, dev); err != nil {
			return "", fmt.Errorf("netup: rename %s (%s) to %s: %w", name, mac, dev, err)
		}
		u.log.Info("netup: renamed", "link", name, "mac", mac.String(), "name", dev)
		name = dev
	}
	if err == nil {
		return name, nil
	}
	if errors.Is(err, errTimeout) {
		err = fmt.Errorf("%w: %w", ErrNoLink, err)
	}
	return "", fmt.Errorf("netup: wait for %s: %w", what, err)
}

// pickLink returns the link with address mac when mac is set, else dev
// if it is in ls, or when dev is "", the ethernet link with the lowest
// index. It returns "" when there is none.
func pickLink(ls []link, dev string, mac net.HardwareAddr) string {
	best := link{index: -1}
	for _, l := range ls {
		if mac != nil {
			if bytes.Equal(l.mac, mac) {
				return l.name
			}
			continue
		}
		if dev != "" && l.name == dev {
			return dev
		}
		if dev == "" && l.ethernet && (best.index < 0 || l.index < best.index) {
			best = l
		}
	}
	return best.name
}

// bringUp sets dev up and waits briefly for carrier. No carrier is logged,
// not fatal: a static address can go on anyway, and DHCP retries.
func (u *upper) bringUp(ctx context.Context, dev string) error {
	if err := u.k.linkUp(dev); err != nil {
		return fmt.Errorf("netup: set %s up: %w", dev, err)
	}
	err := u.poll(ctx, u.t.carrierWait, func() (bool, error) {
		ls, err := u.k.links()
		for _, l := range ls {
			if l.name == dev {
				return l.carrier, err
			}
		}
		return false, err
	})
	if ctx.Err() != nil {
		return fmt.Errorf("netup: wait for carrier on %s: %w", dev, ctx.Err())
	}
	if err != nil {
		u.log.Warn("netup: no carrier yet, going on", "link", dev, "err", err)
	}
	return nil
}

var errTimeout = errors.New("timed out")

// poll calls check every u.t.poll until it reports done, within runs out
// (errTimeout, with check's last error), or ctx ends.
func (u *upper) poll(ctx context.Context, within time.Duration, check func() (bool, error)) error {
	deadline := time.Now().Add(within)
	for {
		done, err := check()
		if done {
			return nil
		}
		if !time.Now().Before(deadline) {
			if err != nil {
				return fmt.Errorf("%w after %v (last error: %w)", errTimeout, within, err)
			}
			return fmt.Errorf("%w after %v", errTimeout, within)
		}
		if !sleep(ctx, u.t.poll) {
			return ctx.Err()
		}
	}
}

// static applies the address, the default route and resolv.conf of cfg.
func (u *upper) static(dev string, cfg Config) (State, error) {
	st := State{Source: sourceStatic, Interface: dev}
	if err := u.k.addrReplace(dev, cfg.Address, 0); err != nil {
		return st, fmt.Errorf("netup: add %s to %s: %w", cfg.Address, dev, err)
	}
	st.Address = cfg.Address
	if cfg.Gateway.IsValid() {
		r := defaultRoute(dev, cfg.Address, cfg.Gateway)
		if err := u.k.routeReplace(r); err != nil {
			return st, fmt.Errorf("netup: add default route via %s to %s: %w", cfg.Gateway, dev, err)
		}
		st.Gateway = cfg.Gateway
	}
	u.log.Info("netup: static address", "link", dev, "address", cfg.Address, "gateway", cfg.Gateway)
	if u.resolvConf == "" {
		return st, nil
	}
	rc := resolvConf{origin: "static on " + dev, dns: cfg.DNS}
	if err := writeResolvConf(u.resolvConf, rc); err != nil {
		return st, err
	}
	st.DNS = append([]netip.Addr(nil), cfg.DNS...)
	return st, nil
}

// dhcp starts the lease loop on dev and waits for its first lease.
func (u *upper) dhcp(ctx context.Context, dev string, cfg Config) (State, error) {
	d := newLeaser(u, dev, cfg)
	safe.Go(u.log, "netup dhcp "+dev, func() { d.supervise(ctx) })
	t := time.NewTimer(u.t.firstLease)
	defer t.Stop()
	select {
	case st := <-d.bound:
		return st, nil
	case <-t.C:
		return State{Source: sourceDHCP, Interface: dev},
			fmt.Errorf("netup: dhcp on %s: no lease within %v%s: %w", dev, u.t.firstLease, d.lastError(), ErrNoLease)
	case <-ctx.Done():
		return State{Source: sourceDHCP, Interface: dev}, fmt.Errorf("netup: dhcp on %s: %w", dev, ctx.Err())
	}
}

// checkConfig refuses a Config that ParseIP would not have produced.
func checkConfig(c Config) error {
	if c.Mode < ModeDHCP || c.Mode > ModeOff {
		return fmt.Errorf("netup: config: unknown mode %v", c.Mode)
	}
	if err := checkDevice(c.Device); err != nil {
		return fmt.Errorf("netup: config: device %q: %w", c.Device, err)
	}
	if err := checkHostname(c.Hostname); err != nil {
		return fmt.Errorf("netup: config: hostname %q: %w", c.Hostname, err)
	}
	for _, a := range c.DNS {
		if err := checkV4Host(a); err != nil {
			return fmt.Errorf("netup: config: dns %v: %w", a, err)
		}
	}
	if c.Mode != ModeStatic {
		return nil
	}
	if err := checkV4Host(c.Address.Addr()); err != nil || c.Address.Bits() < 1 {
		return fmt.Errorf("netup: config: address %v: want an IPv4 address with a prefix length of 1 to 32", c.Address)
	}
	if c.Gateway.IsValid() {
		if err := checkV4Host(c.Gateway); err != nil {
			return fmt.Errorf("netup: config: gateway %v: %w", c.Gateway, err)
		}
	}
	return nil
}

func checkV4Host(a netip.Addr) error {
	if !a.Is4() {
		return errNotIPv4
	}
	return checkHost(a)
}
