package api

import (
	"bufio"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

// Issue 10, "a connection flood by strangers": connections with an
// unknown key were answered 401 and then kept for 5 minutes each, with
// no cap; 4,080 of them took init's open files. These tests drive the
// real server on loopback.

// strangerConn is a finished TLS handshake with key on n.
func (n *testNode) tlsConn(t *testing.T, key ed25519.PrivateKey) *tls.Conn {
	t.Helper()
	cfg, err := ClientTLS(key, n.key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", n.addr, cfg)
	if err != nil {
		t.Fatalf("tls.Dial(%s) = %v", n.addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawConn is a TCP connection to n that sends nothing, from source
// address from ("" for any).
func (n *testNode) rawConn(t *testing.T, from string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", n.addr)
	if err != nil {
		t.Fatalf("dial %s from %q = %v", n.addr, from, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reports whether the server closes c within d (a read
// ends in EOF or a reset, not in the read deadline).
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// waitStats waits until n's gate counts what want says.
func (n *testNode) waitStats(t *testing.T, ok func(ConnStats) bool) ConnStats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := n.server.ConnStats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("ConnStats() = %+v, still not as wanted after 5s", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStranger401ClosesTheConnection(t *testing.T) {
	n := startNode(t)
	c := n.tlsConn(t, newKey(t))
	req, _ := http.NewRequest(http.MethodGet, "https://node/v1/node", nil)
	if err := req.Write(c); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
		t.Errorf("answer to a stranger = %d, close %v; want 401 and Connection: close", resp.StatusCode, resp.Close)
	}
	if !closedWithin(c, 2*time.Second) {
		t.Errorf("the connection is still open 2s after the 401, want it closed")
	}
	n.waitStats(t, func(st ConnStats) bool { return st.Unverified == 0 })
}

func TestAuthorizedConnectionStaysOpen(t *testing.T) {
	n := startNodeWith(t, Limits{Stranger: 100 * time.Millisecond})
	c := n.dial(t, n.client)
	for i := range 3 {
		if _, err := c.Node(t.Context()); err != nil {
			t.Fatalf("Node() #%d = %v", i, err)
		}
		time.Sleep(200 * time.Millisecond) // past the stranger deadline
	}
	if st := n.server.ConnStats(); st.Authorized != 1 || st.Unverified != 0 {
		t.Errorf("ConnStats() = %+v, want one authorized connection, kept across requests", st)
	}
}

func TestStrangerIdleIsClosedAtItsDeadline(t *testing.T) {
	n := startNodeWith(t, Limits{Stranger: 300 * time.Millisecond})
	start := time.Now()
	handshaken := n.tlsConn(t, newKey(t)) // sends no request
	silent := n.rawConn(t, "")            // not even a handshake
	for name, c := range map[string]net.Conn{"after its handshake": handshaken, "without a handshake": silent} {
		if !closedWithin(c, 5*time.Second) {
			t.Errorf("an idle stranger %s is still open after 5s, want it closed after 300ms", name)
		}
		if d := time.Since(start); d < 250*time.Millisecond {
			t.Errorf("an idle stranger %s was closed after %v, want about 300ms", name, d)
		}
	}
	n.waitStats(t, func(st ConnStats) bool { return st.Unverified == 0 })
}

func TestPerSourceCap(t *testing.T) {
	n := startNodeWith(t, Limits{Conns: 50, PerSource: 3, Stranger: time.Minute})
	var first []net.Conn
	for range 3 {
		first = append(first, n.rawConn(t, "127.0.0.1"))
	}
	n.waitStats(t, func(st ConnStats) bool { return st.Unverified == 3 })
	n.rawConn(t, "127.0.0.1")
	if !closedWithin(first[0], 2*time.Second) {
		t.Errorf("the oldest of 4 connections from 127.0.0.1 with PerSource 3 is open, want it closed")
	}
	if closedWithin(first[1], 100*time.Millisecond) {
		t.Errorf("the second oldest of 4 connections from 127.0.0.1 is closed, want only the oldest closed")
	}
	if c := n.rawConn(t, "127.0.0.2"); closedWithin(c, 100*time.Millisecond) {
		t.Errorf("a connection from 127.0.0.2 was closed, want it admitted: the cap is per source")
	}
	// An authorized client from the same source gets in all the same.
	if _, err := n.dial(t, n.client).Node(t.Context()); err != nil {
		t.Errorf("Node() by an authorized key from a source at its cap = %v, want an answer", err)
	}
	st := n.server.ConnStats()
	if st.Authorized != 1 || st.Unverified != 3 || st.Evicted != 2 {
		t.Errorf("ConnStats() = %+v, want 1 authorized, 3 unverified (2 left from .1, 1 from .2), 2 evicted", st)
	}
}

func TestReserveIsForAuthorizedClients(t *testing.T) {
	n := startNodeWith(t, Limits{Conns: 6, Reserved: 2, PerSource: -1, Stranger: time.Minute})
	for range 4 { // the general pool: strangers that never handshake
		n.rawConn(t, "")
	}
	n.waitStats(t, func(st ConnStats) bool { return st.Unverified == 4 })

	// A stranger now lands in the reserve, on trial, and is refused
	// once its key is known.
	cfg, _ := ClientTLS(newKey(t), n.key.Public().(ed25519.PublicKey))
	if c, err := tls.Dial("tcp", n.addr, cfg); err == nil {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
		var ne net.Error
		if err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("a stranger's read in the reserve = %v, want the handshake refused", err)
		}
	}

	// Two stalled handshakes take the reserve; an authorized client
	// evicts the older and is served, twice at once.
	n.rawConn(t, "")
	n.rawConn(t, "")
	n.waitStats(t, func(st ConnStats) bool { return st.Unverified == 6 })
	a, b := n.dial(t, n.client), n.dial(t, n.client)
	for name, c := range map[string]*Client{"first": a, "second": b} {
		if _, err := c.Node(t.Context()); err != nil {
			t.Fatalf("Node() by the %s authorized client at the cap = %v, want an answer from the reserve", name, err)
		}
	}
	st := n.server.ConnStats()
	if st.Authorized != 2 || st.Evicted != 2 || st.Authorized+st.Unverified > 6 {
		t.Errorf("ConnStats() = %+v, want 2 authorized, 2 evicted, at most 6 open", st)
	}
	// A stranger now finds no slot at all.
	if c := n.rawConn(t, ""); !closedWithin(c, 2*time.Second) {
		t.Errorf("a connection with the reserve held by authorized clients is open, want it refused")
	}
}

func TestMaxFDRefuses(t *testing.T) {
	n := startNodeWith(t, Limits{MaxFD: 1}) // every descriptor is above it
	if c := n.rawConn(t, ""); !closedWithin(c, 2*time.Second) {
		t.Errorf("a connection accepted above MaxFD is open, want it closed at once")
	}
}

func TestLimitsDefaults(t *testing.T) {
	got := Limits{Reserved: 10, Conns: 4}.withDefaults()
	want := Limits{Conns: 4, Reserved: 3, PerSource: DefaultPerSource, Stranger: DefaultStranger, Idle: DefaultIdle, Handshakes: DefaultHandshakes}
	if got != want {
		t.Errorf("Limits{Conns: 4, Reserved: 10}.withDefaults() = %+v, want %+v", got, want)
	}
	if got := (Limits{Reserved: -1, PerSource: -1}).withDefaults(); got.Reserved != 0 || got.PerSource != -1 || got.Conns != DefaultConns {
		t.Errorf("Limits{Reserved: -1, PerSource: -1}.withDefaults() = %+v, want no reserve, no per-source cap", got)
	}
}

// A source may start Handshakes handshakes a second, with a burst of
// four times as many; another source keeps its own; time gives tokens back;
// no per-source cap (the onion) means no rate either.
func TestHandshakeRatePerSource(t *testing.T) {
	now := time.Unix(1000, 0)
	g := newGate(Limits{Handshakes: 2}, nil, nil)
	g.now = func() time.Time { return now }
	// Without pressure nothing is counted.
	for i := range 20 {
		if !g.handshake(netip.MustParsePrefix("203.0.113.5/32")) {
			t.Fatalf("handshake %d refused on a quiet listener, want no cap without pressure", i)
		}
	}
	g.general = g.lim.Conns - g.lim.Reserved // a flood holds the general pool
	a, b := netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("198.51.100.7/32")
	took := func(src netip.Prefix, n int) int {
		ok := 0
		for range n {
			if g.handshake(src) {
				ok++
			}
		}
		return ok
	}
	if got := took(a, 12); got != 8 {
		t.Errorf("a burst of 12 from one source: %d handshakes, want 8 (four times the rate)", got)
	}
	if got := took(b, 3); got != 3 {
		t.Errorf("another source meanwhile: %d of 3, want all", got)
	}
	now = now.Add(time.Second)
	if got := took(a, 10); got != 2 {
		t.Errorf("a second later: %d handshakes, want 2 (the rate)", got)
	}
	// An authorized client's handshake gives its token back: it never
	// runs out by itself.
	for i := range 50 {
		if !g.handshake(b) {
			t.Fatalf("authorized handshake %d from b refused, want its token refunded each time", i)
		}
		g.refund(b)
	}
	onion := newGate(Limits{Handshakes: 2, PerSource: -1}, nil, nil)
	onion.general = onion.lim.Conns - onion.lim.Reserved
	for i := range 10 {
		if !onion.handshake(a) {
			t.Fatalf("onion: handshake %d refused, want no rate without a per-source cap", i)
		}
	}
}

// A connection closed before its ClientHello gives its handshake token
// back: connecting and hanging up, as a client killed early does, costs
// the node no CPU and does not use the source's budget up.
func TestHandshakeRefundedWithoutHello(t *testing.T) {
	g := newGate(Limits{Handshakes: 1, Conns: 300, Reserved: -1}, nil, slog.New(slog.DiscardHandler)) // 4 at once
	g.general = 100                                                                                   // under pressure: a third of the pool held by strangers
	for i := range 20 {
		a, b := net.Pipe()
		gc := g.admit(a)
		if gc == nil {
			t.Fatalf("connection %d refused: the closed ones before it did not give their tokens back", i)
		}
		gc.Close()
		b.Close()
	}
	a, b := net.Pipe()
	defer b.Close()
	gc := g.admit(a)
	if gc == nil {
		t.Fatal("refused after the closed ones")
	}
	g.mu.Lock()
	gc.hello = true // its handshake began
	g.mu.Unlock()
	gc.Close()
	took := 0
	for range 10 {
		a, b := net.Pipe()
		if gc := g.admit(a); gc != nil {
			took++
			g.mu.Lock()
			gc.hello = true
			g.mu.Unlock()
			gc.Close()
		}
		b.Close()
	}
	if took != 3 {
		t.Errorf("after one real handshake: %d more admitted of 10, want 3 (the burst of 4 less the one that began)", took)
	}
}
