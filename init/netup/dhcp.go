package netup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"allium/internal/safe"
)

// dhcpClient is the seam over nclient4: one DHCP exchange per call. A NAK
// comes back as an error wrapping errNak.
type dhcpClient interface {
	// request runs Discover, Offer, Request, Ack.
	request(ctx context.Context) (*grant, error)
	// renew asks the server that granted g to extend it.
	renew(ctx context.Context, g *grant) (*grant, error)
	// rebind asks any server to extend g.
	rebind(ctx context.Context, g *grant) (*grant, error)
	close() error
}

// grant is a server's answer that grants a lease.
type grant struct {
	offer *dhcpv4.DHCPv4 // names the server that renewals must reach
	ack   *dhcpv4.DHCPv4
}

// redialAfter is how many failed exchanges in a row make the leaser open a
// new client: the old one's socket may be dead (a link that went down
// closes packet sockets with ENETDOWN).
const redialAfter = 4

// leaser keeps a DHCP lease on one link, following RFC 2131 section 4.4.
// One goroutine runs it and owns every field except bound and lastErr.
//
//	INIT --ack--> BOUND --T1--> RENEWING --T2--> REBINDING
//	^  |            ^              |                 |
//	+--+            +-----ack------+-------ack-------+
//	no answer: back off, retry forever
//
// From RENEWING or REBINDING, a NAK or the end of the lease removes the
// address and goes back to INIT.
type leaser struct {
	k          kernel
	dial       func() (dhcpClient, error)
	c          dhcpClient // nil until dialled, and after redialAfter failures
	dev        string
	dns        []netip.Addr // from Config: replaces the server's when set
	resolvConf string
	t          timings
	log        *slog.Logger

	cur        netip.Prefix // the address this leaser put on dev
	lastResolv string       // what it last wrote to resolvConf
	fails      int          // failed exchanges in a row

	bound   chan State             // receives the State of each bind, if empty
	lastErr atomic.Pointer[string] // the last failure, for Up's error
}

// lease is a bound lease with its deadlines.
type lease struct {
	grant       *grant
	info        leaseInfo
	t1, t2, end time.Time // all zero for a lease without an end
}

func newLeaser(u *upper, dev string, cfg Config) *leaser {
	return &leaser{
		k:          u.k,
		dial:       func() (dhcpClient, error) { return u.dial(dev, cfg.Hostname, u.log) },
		dev:        dev,
		dns:        slices.Clone(cfg.DNS),
		resolvConf: u.resolvConf,
		t:          u.t,
		log:        u.log,
		bound:      make(chan State, 1),
	}
}

// supervise runs the lease loop until ctx ends. A panic in the loop is
// logged, and the loop starts over after a pause.
func (d *leaser) supervise(ctx context.Context) {
	defer d.closeClient()
	for ctx.Err() == nil {
		if !safe.Run(d.log, "netup dhcp "+d.dev, func() { d.run(ctx) }) {
			return
		}
		d.closeClient()
		sleep(ctx, d.t.retryMax)
	}
}

// run alternates between acquiring a lease and holding it.
func (d *leaser) run(ctx context.Context) {
	for {
		l := d.acquire(ctx)
		if l == nil || !d.hold(ctx, l) {
			return
		}
	}
}

// acquire runs DORA until a lease is bound, backing off between failures.
// It returns nil only when ctx ends.
func (d *leaser) acquire(ctx context.Context) *lease {
	pause := d.t.retryMin
	for {
		l, err := d.exchange(ctx, "discover", func(ctx context.Context, c dhcpClient) (*grant, error) {
			return c.request(ctx)
		})
		if err == nil {
			return l
		}
		if !sleep(ctx, jitter(pause)) {
			return nil
		}
		pause = min(pause*2, d.t.retryMax)
	}
}

// hold keeps l until it is lost, and then reports true. It reports false
// when ctx ends.
func (d *leaser) hold(ctx context.Context, l *lease) bool {
	for {
		if l.end.IsZero() {
			<-ctx.Done()
			return false
		}
		if !sleep(ctx, time.Until(l.t1)) {
			return false
		}
		next, err := d.extend(ctx, l)
		if ctx.Err() != nil {
			return false
		}
		if next == nil {
			d.drop(err)
			return true
		}
		l = next
	}
}

var errLeaseEnded = errors.New("lease ended")

// extend renews l until T2, then rebinds until it ends. It returns the new
// lease, or nil and why l is lost.
func (d *leaser) extend(ctx context.Context, l *lease) (*lease, error) {
	for {
		now := time.Now()
		if !now.Before(l.end) {
			return nil, errLeaseEnded
		}
		what, until, f := "renew", l.t2, dhcpClient.renew
		if !now.Before(l.t2) {
			what, until, f = "rebind", l.end, dhcpClient.rebind
		}
		next, err := d.exchange(ctx, what, func(ctx context.Context, c dhcpClient) (*grant, error) {
			return f(c, ctx, l.grant)
		})
		if err == nil || errors.Is(err, errNak) || ctx.Err() != nil {
			return next, err
		}
		if !sleep(ctx, d.retryPause(time.Until(until))) {
			return nil, ctx.Err()
		}
	}
}

// retryPause is the pause between tries in RENEWING and REBINDING
// (RFC 2131 section 4.4.5): half the time left in the phase, at least
// renewMin, and never past the end of the phase.
func (d *leaser) retryPause(left time.Duration) time.Duration {
	return min(max(left/2, d.t.renewMin), left)
}

// exchange runs one DHCP exchange under the attempt deadline and binds the
// lease it returns.
func (d *leaser) exchange(ctx context.Context, what string,
	f func(context.Context, dhcpClient) (*grant, error)) (*lease, error) {
	l, err := d.tryExchange(ctx, f)
	if err != nil {
		if ctx.Err() == nil { // shutting down is no failure
			d.failed(what, err)
		}
		return nil, err
	}
	d.fails = 0
	return l, nil
}

func (d *leaser) tryExchange(ctx context.Context, f func(context.Context, dhcpClient) (*grant, error)) (*lease, error) {
	c, err := d.client()
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, d.t.attempt)
	raw, err := f(actx, c)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("netup: dhcp on %s: %w", d.dev, err)
	}
	return d.bind(raw)
}

// failed logs a failed exchange and drops the client after a run of them.
func (d *leaser) failed(what string, err error) {
	msg := err.Error()
	d.lastErr.Store(&msg)
	d.fails++
	d.log.Warn("netup: dhcp "+what+" failed", "link", d.dev, "err", err, "in_a_row", d.fails)
	if d.fails%redialAfter == 0 {
		d.closeClient()
	}
}

// lastError returns ", last error: …" for Up's error, or "".
func (d *leaser) lastError() string {
	if p := d.lastErr.Load(); p != nil {
		return " (last error: " + *p + ")"
	}
	return ""
}

func (d *leaser) client() (dhcpClient, error) {
	if d.c == nil {
		c, err := d.dial()
		if err != nil {
			return nil, fmt.Errorf("netup: dhcp client on %s: %w", d.dev, err)
		}
		d.c = c
	}
	return d.c, nil
}

func (d *leaser) closeClient() {
	if d.c != nil {
		if err := d.c.close(); err != nil {
			d.log.Debug("netup: close dhcp client", "link", d.dev, "err", err)
		}
		d.c = nil
	}
}

// bind applies a lease the server granted and announces it.
func (d *leaser) bind(raw *grant) (*lease, error) {
	if raw == nil || raw.ack == nil {
		return nil, fmt.Errorf("netup: dhcp on %s: no ack in the lease", d.dev)
	}
	info, err := parseAck(raw.ack, d.t.minLease)
	if err != nil {
		return nil, err
	}
	if err := d.apply(info); err != nil {
		return nil, err
	}
	l := &lease{grant: raw, info: info}
	if info.dur > 0 {
		now := time.Now()
		l.t1, l.t2, l.end = now.Add(info.t1), now.Add(info.t2), now.Add(info.dur)
	}
	st := d.state(info)
	d.log.Info("netup: dhcp lease", "link", d.dev, "address", st.Address, "gateway", st.Gateway,
		"dns", st.DNS, "server", st.Server, "lease", st.Lease)
	if info.hostname != "" {
		d.log.Debug("netup: dhcp server offers a hostname, ignored", "hostname", info.hostname)
	}
	select {
	case d.bound <- st:
	default:
	}
	return l, nil
}

// apply puts the lease on the link. Only the address is required; a failed
// route or resolv.conf is logged, and tried again at the next renewal.
func (d *leaser) apply(info leaseInfo) error {
	if d.cur.IsValid() && d.cur != info.addr {
		// Remove the old address first: deleting a primary address also
		// deletes the secondaries of its subnet unless promote_secondaries
		// is set, which would take the new one with it.
		d.drop(errors.New("the server gave a new address"))
	}
	if err := d.k.addrReplace(d.dev, info.addr, info.dur); err != nil {
		return fmt.Errorf("netup: add %s to %s: %w", info.addr, d.dev, err)
	}
	d.cur = info.addr
	if info.router.IsValid() {
		if err := d.k.routeReplace(defaultRoute(d.dev, info.addr, info.router)); err != nil {
			d.warn(fmt.Errorf("netup: add default route via %s to %s: %w", info.router, d.dev, err))
		}
	}
	if err := d.writeResolv(info); err != nil {
		d.warn(err)
	}
	return nil
}

func (d *leaser) warn(err error) {
	msg := err.Error()
	d.lastErr.Store(&msg)
	d.log.Warn("netup: dhcp", "link", d.dev, "err", err)
}

// writeResolv writes resolv.conf when its content changes.
func (d *leaser) writeResolv(info leaseInfo) error {
	if d.resolvConf == "" {
		return nil
	}
	rc := resolvConf{origin: "dhcp on " + d.dev, dns: d.servers(info), search: info.domain}
	if info.server.IsValid() {
		rc.origin += " from " + info.server.String()
	}
	text := rc.render()
	if text == d.lastResolv {
		return nil
	}
	if err := writeFileAtomic(d.resolvConf, text); err != nil {
		return fmt.Errorf("netup: write %s: %w", d.resolvConf, err)
	}
	d.lastResolv = text
	return nil
}

// servers returns the DNS servers to use: the configured ones if any,
// else the lease's.
func (d *leaser) servers(info leaseInfo) []netip.Addr {
	if len(d.dns) > 0 {
		return d.dns
	}
	return info.dns
}

// drop removes the address this leaser put on the link, because the lease
// is lost or replaced.
func (d *leaser) drop(why error) {
	if !d.cur.IsValid() {
		return
	}
	d.log.Warn("netup: dhcp address removed", "link", d.dev, "address", d.cur, "reason", why)
	if err := d.k.addrDel(d.dev, d.cur); err != nil {
		// At the end of a lease the kernel may have removed it already.
		d.log.Debug("netup: remove address", "link", d.dev, "address", d.cur, "err", err)
	}
	d.cur = netip.Prefix{}
}

func (d *leaser) state(info leaseInfo) State {
	st := State{
		Source:    sourceDHCP,
		Interface: d.dev,
		Address:   info.addr,
		Gateway:   info.router,
		Server:    info.server,
		Lease:     info.dur,
	}
	if d.resolvConf != "" {
		st.DNS = slices.Clone(d.servers(info))
	}
	return st
}

// sleep waits for d, or until ctx ends. It reports whether ctx is still
// live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// jitter spreads d by ±20%, so a fleet does not retry in step.
func jitter(d time.Duration) time.Duration {
	return d*4/5 + rand.N(d*2/5+1)
}
