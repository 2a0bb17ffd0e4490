package api

import (
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"
)

// What a connection may cost on the TLS listeners (TCP and onion). A
// stranger (a client whose key this node does not authorize) is bounded
// in number and in time; an authorized client keeps a share of the
// slots that strangers cannot take. The gate sits between the listener
// and the TLS handshake:
//
//	accept ─> descriptor number ≥ MaxFD? ─ yes ─> close (the rest is init's)
//	  │ no
//	  v
//	PerSource unverified connections from this source already? ─ yes ─> close the oldest
//	  │
//	  v
//	a general slot free? ─ yes ─> take it ───────────────────────┐
//	  │ no                                                        │
//	  v                                                           │
//	a reserve slot free, or one held by a handshake on trial      │
//	(evict the oldest)? ─ yes ─> take it, on trial ───────────────┤
//	  │ no                                                        │
//	  v                                                           v
//	close                           TLS handshake: the client's key is known
//	                                  ├─ authorized: keep the slot; no deadline but Idle
//	                                  └─ a stranger: on trial, refused at once (handshake
//	                                     error); in the general pool, one request, its 401
//	                                     (Connection: close), and closed Stranger after its
//	                                     accept whatever it does
//
// So strangers hold at most Conns-Reserved slots for at most Stranger
// each, plus handshakes on trial that the next arrival evicts, and at
// most PerSource from one source, whose newest connection evicts its
// oldest (so that an authorized client behind the same address still
// gets in, unless that source opens PerSource connections during its
// handshake). An authorized client finds a slot unless Conns
// authorized connections are open. The unix socket has no gate: it is root's on the node, and
// the open files above MaxFD are kept for it and for init's own work.

// Limits bounds the connections of one TLS listener. The zero value of
// each field means its default.
type Limits struct {
	// Conns caps the listener's open connections; 0 means
	// DefaultConns.
	Conns int
	// Reserved of those slots only authorized clients keep past their
	// handshake; 0 means DefaultReserved, a negative value none. It is
	// at most Conns-1.
	Reserved int
	// PerSource caps the connections not yet authorized from one source
	// (an IPv4 address, an IPv6 /64): a newer one closes the oldest.
	// 0 means DefaultPerSource, a
	// negative value no cap (the onion: all its connections come from
	// tor on loopback).
	PerSource int
	// Stranger is how long a connection may stay open until its key is
	// found authorized: the handshake, and a stranger's one request
	// and its answer. 0 means DefaultStranger.
	Stranger time.Duration
	// Idle is how long an authorized connection may idle between
	// requests; 0 means DefaultIdle.
	Idle time.Duration
	// Handshakes caps, while a quarter of the general pool or more is
	// held by connections not yet authorized, the TLS handshakes a
	// second (with a burst of
	// four times as many) the listener starts for one source's connections
	// (with PerSource's sources; not on the onion): each costs the node
	// key exchanges and signatures, and a flood of them takes the CPU an
	// authorized client's requests need. A connection past the cap is
	// closed at its accept, which costs next to nothing. A handshake
	// that finds its key authorized gives its token back, so an
	// authorized client never uses the budget up by itself (a script
	// that polls, a NAT in front of several operators), and so does a
	// connection closed before its ClientHello (it cost no CPU). An authorized
	// client behind another address is not affected by a flood; one
	// behind the flooding address retries (its open connections stay).
	// 0 means DefaultHandshakes, a negative value no cap.
	Handshakes int
	// MaxFD: a connection accepted on a descriptor numbered MaxFD or
	// above is closed at once, since descriptors are numbered lowest
	// free first and so at least MaxFD are open; the ones above are
	// the process's own reserve. 0 means no such check.
	MaxFD int
}

// The defaults of Limits.
const (
	DefaultConns     = 256
	DefaultReserved  = 32
	DefaultPerSource = 16
	// DefaultHandshakes: far more than an operator's client makes from
	// one address (one a command), and a few % of a core of handshake
	// work per source.
	DefaultHandshakes = 10
	DefaultStranger   = 10 * time.Second
	DefaultIdle       = 60 * time.Second
)

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.Conns, DefaultConns)
	def(&l.Reserved, DefaultReserved)
	def(&l.PerSource, DefaultPerSource)
	def(&l.Handshakes, DefaultHandshakes)
	l.Conns = max(l.Conns, 1)
	l.Reserved = min(max(l.Reserved, 0), l.Conns-1)
	if l.Stranger <= 0 {
		l.Stranger = DefaultStranger
	}
	if l.Idle <= 0 {
		l.Idle = DefaultIdle
	}
	return l
}

// ConnStats counts a listener's connections.
type ConnStats struct {
	// Authorized and Unverified are open now: with an authorized key,
	// and not (yet).
	Authorized, Unverified int
	// Refused were closed at their accept or their handshake for want
	// of a slot (or of descriptors); Evicted were not yet authorized
	// and made room for a newer connection (from the same source, or
	// on trial in the reserve).
	Refused, Evicted uint64
}

// Add sums two listeners' counts.
func (s ConnStats) Add(o ConnStats) ConnStats {
	return ConnStats{s.Authorized + o.Authorized, s.Unverified + o.Unverified, s.Refused + o.Refused, s.Evicted + o.Evicted}
}

// errNoSlot fails the handshake of a stranger on trial in the reserve,
// or of a connection evicted meanwhile.
var errNoSlot = errors.New("api: the node is at its connection cap; only authorized keys are admitted")

// gate admits a listener's connections (see the diagram above).
type gate struct {
	lim       Limits
	authorize func(ed25519.PublicKey) bool
	log       *slog.Logger
	refusals  sampledLog

	mu      sync.Mutex
	general int // slots held in the general pool
	reserve int // slots held in the reserve
	authed  int
	sources map[netip.Prefix][]*gateConn // unverified connections per source, oldest first
	trial   []*gateConn                  // unverified holders of reserve slots, oldest first
	refused uint64
	evicted uint64
	buckets map[netip.Prefix]*tokenBucket // handshakes per source (Limits.Handshakes)
	now     func() time.Time
}

func newGate(lim Limits, authorize func(ed25519.PublicKey) bool, log *slog.Logger) *gate {
	return &gate{lim: lim.withDefaults(), authorize: authorize, log: log, sources: map[netip.Prefix][]*gateConn{},
		buckets: map[netip.Prefix]*tokenBucket{}, now: time.Now}
}

// maxBuckets bounds the sources whose handshake rate the gate keeps:
// past it, those whose bucket has filled up again are forgotten.
const maxBuckets = 4096

// handshake takes a token of src's bucket, when the listener is under
// pressure: a quarter of its general pool or more held by connections
// not yet authorized. Below that nothing is counted, so that clients
// that poll or retry against a slow node (their handshakes cut short
// cost tokens) never meet the cap while no flood is on. g.mu is held.
func (g *gate) handshake(src netip.Prefix) bool {
	if g.lim.PerSource <= 0 || g.lim.Handshakes <= 0 {
		return true
	}
	if g.general+g.reserve-g.authed < max(1, (g.lim.Conns-g.lim.Reserved)/4) {
		return true
	}
	now := g.now()
	b := g.buckets[src]
	if b == nil {
		if len(g.buckets) >= maxBuckets {
			for k, v := range g.buckets {
				if now.Sub(v.last).Seconds()*v.rate >= v.burst {
					delete(g.buckets, k)
				}
			}
		}
		b = &tokenBucket{rate: float64(g.lim.Handshakes), burst: 4 * float64(g.lim.Handshakes)}
		g.buckets[src] = b
	}
	return b.allow(now)
}

// refund gives back the token src's handshake took, once its key was
// found authorized: a client that polls or opens a connection per
// command never runs out. g.mu is held.
func (g *gate) refund(src netip.Prefix) {
	if b := g.buckets[src]; b != nil {
		b.tokens = min(b.burst, b.tokens+1)
	}
}

// tokenBucket allows rate events a second, burst at once; a rate of 0
// or less allows every event.
type tokenBucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

// allow takes a token at now, if there is one.
func (b *tokenBucket) allow(now time.Time) bool {
	if b.rate <= 0 {
		return true
	}
	if b.last.IsZero() {
		b.tokens = b.burst
	} else if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// gateConn is an admitted connection; Close gives its slot back.
type gateConn struct {
	net.Conn
	g     *gate
	src   netip.Prefix
	timer *time.Timer // closes it at the stranger deadline; stopped once authorized
	once  sync.Once

	// Guarded by g.mu.
	hello     bool // its ClientHello came: the node did handshake work for it
	refunded  bool // its handshake token went back (no hello: it cost nothing)
	inReserve bool
	verified  bool // its key is authorized
	gone      bool // its slot is given back (closed, evicted or refused)
}

func (c *gateConn) Close() error {
	c.g.release(c)
	err := net.ErrClosed
	c.once.Do(func() { err = c.Conn.Close() })
	return err
}

// admit takes a slot for c, or returns nil: the caller closes c.
func (g *gate) admit(c net.Conn) *gateConn {
	if g.lim.MaxFD > 0 && fdOf(c) >= g.lim.MaxFD {
		g.refuse("the node is near its open-file limit")
		return nil
	}
	gc := &gateConn{Conn: c, g: g, src: sourceOf(c.RemoteAddr())}
	var victims []*gateConn
	defer func() {
		for _, v := range victims {
			v.Close()
		}
	}()
	g.mu.Lock()
	if !g.handshake(gc.src) {
		g.mu.Unlock()
		g.refuse("a source's handshake rate is reached")
		return nil
	}
	if g.lim.PerSource > 0 && len(g.sources[gc.src]) >= g.lim.PerSource {
		victims = append(victims, g.evict(g.sources[gc.src][0]))
	}
	switch {
	case g.general < g.lim.Conns-g.lim.Reserved:
		g.general++
	case g.reserve < g.lim.Reserved:
		g.takeReserve(gc)
	case len(g.trial) > 0:
		victims = append(victims, g.evict(g.trial[0]))
		g.takeReserve(gc)
	default:
		g.mu.Unlock()
		g.refuse("the connection cap is reached")
		return nil
	}
	g.sources[gc.src] = append(g.sources[gc.src], gc)
	gc.timer = time.AfterFunc(g.lim.Stranger, func() { gc.Close() })
	g.mu.Unlock()
	return gc
}

// evict gives v's slot back for a newer connection; the caller closes
// v once g.mu is released. g.mu is held.
func (g *gate) evict(v *gateConn) *gateConn {
	g.drop(v)
	g.evicted++
	return v
}

func (g *gate) takeReserve(gc *gateConn) {
	g.reserve++
	gc.inReserve = true
	g.trial = append(g.trial, gc)
}

// verified is told by the handshake whether gc's key is authorized. A
// stranger on trial in the reserve gets errNoSlot, which fails the
// handshake.
func (g *gate) verified(gc *gateConn, ok bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case gc.gone:
		return errNoSlot
	case ok:
		g.leaveUnverified(gc)
		g.refund(gc.src) // an authorized client's handshakes are not the flood's
		gc.verified = true
		g.authed++
		gc.timer.Stop()
		return nil
	case gc.inReserve:
		g.drop(gc)
		g.refused++
		return errNoSlot
	}
	return nil // a stranger in the general pool: its request gets a 401
}

// release gives gc's slot back, once.
func (g *gate) release(gc *gateConn) {
	g.mu.Lock()
	if !gc.gone {
		g.drop(gc)
	}
	if !gc.hello && !gc.verified && !gc.refunded {
		g.refund(gc.src) // closed before its handshake began: it cost no CPU
		gc.refunded = true
	}
	g.mu.Unlock()
	if gc.timer != nil {
		gc.timer.Stop()
	}
}

// drop gives gc's slot back. g.mu is held.
func (g *gate) drop(gc *gateConn) {
	gc.gone = true
	if gc.inReserve {
		g.reserve--
	} else {
		g.general--
	}
	if gc.verified {
		g.authed--
	} else {
		g.leaveUnverified(gc)
	}
}

// leaveUnverified takes gc out of its source's count and the trial
// list. g.mu is held.
func (g *gate) leaveUnverified(gc *gateConn) {
	src := g.sources[gc.src]
	if i := slices.Index(src, gc); i >= 0 {
		src = slices.Delete(src, i, i+1)
	}
	if len(src) == 0 {
		delete(g.sources, gc.src)
	} else {
		g.sources[gc.src] = src
	}
	if i := slices.Index(g.trial, gc); i >= 0 {
		g.trial = slices.Delete(g.trial, i, i+1)
	}
}

func (g *gate) refuse(why string) {
	g.mu.Lock()
	g.refused++
	g.mu.Unlock()
	g.refusals.warn(g.log, "api: refusing connections", "why", why)
}

func (g *gate) stats() ConnStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return ConnStats{Authorized: g.authed, Unverified: g.general + g.reserve - g.authed, Refused: g.refused, Evicted: g.evicted}
}

// tlsConfig is base with the client's key checked against the node's
// authorized keys during the handshake of each gated connection.
func (g *gate) tlsConfig(base *tls.Config) *tls.Config {
	cfg := base.Clone()
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		gc, ok := hello.Conn.(*gateConn)
		if !ok {
			return nil, nil
		}
		g.mu.Lock()
		gc.hello = true
		g.mu.Unlock()
		c := base.Clone()
		c.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			pub, err := peerKey(raw)
			if err != nil {
				return err
			}
			return g.verified(gc, g.authorize(pub))
		}
		return c, nil
	}
	return cfg
}

// gateListener admits what its Listener accepts through its gate.
type gateListener struct {
	net.Listener
	g *gate
}

func (l gateListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if gc := l.g.admit(c); gc != nil {
			return gc, nil
		}
		c.Close()
	}
}

// sourceOf is what PerSource counts by: an IPv4 address, or the /64 of
// an IPv6 address (one subscriber's usual allocation); the zero Prefix
// for an address that is neither.
func sourceOf(a net.Addr) netip.Prefix {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Prefix{}
	}
	ip := ta.AddrPort().Addr().Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// fdOf is c's descriptor number, or -1.
func fdOf(c net.Conn) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	raw.Control(func(f uintptr) { fd = int(f) })
	return fd
}

// sampledLog logs the first of its messages, then at most one per
// sampleEvery with the count of those it left out: a flood must not
// become a flood of log lines.
type sampledLog struct {
	mu      sync.Mutex
	last    time.Time
	skipped int
}

const sampleEvery = 10 * time.Second

func (l *sampledLog) warn(log *slog.Logger, msg string, args ...any) {
	l.mu.Lock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < sampleEvery {
		l.skipped++
		l.mu.Unlock()
		return
	}
	skipped := l.skipped
	l.last, l.skipped = now, 0
	l.mu.Unlock()
	if skipped > 0 {
		args = append(args, "more_not_logged", skipped)
	}
	log.Warn(msg, args...)
}
