package main

import (
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"allium/api"
	"allium/hiddenservice"
)

// How cloud reaches a node: --via.
const (
	viaAuto  = "auto"  // the alias's address, or its onion when it has no address
	viaTCP   = "tcp"   // the address, directly
	viaOnion = "onion" // the onion, through tor
)

// onionPort is the port of a HOST given as ID.onion without one.
const onionPort = "7707"

// onionTimeout is --timeout's default for a node reached through tor,
// where one request can take several round trips of a few seconds.
const onionTimeout = 90 * time.Second

// onionHost parses a HOST given as ID.onion or ID.onion:PORT: ok is
// false when host is not an onion, and err says what is wrong with an
// onion that does not parse.
func onionHost(host string) (addr string, ok bool, err error) {
	name, port, splitErr := net.SplitHostPort(host)
	if splitErr != nil {
		name, port = host, onionPort
	}
	if !hiddenservice.IsOnion(name) {
		return "", false, nil
	}
	if _, err := hiddenservice.ParseAddress(name); err != nil {
		return "", true, usagef("%s: %v", host, err)
	}
	if !validPort(port) {
		return "", true, usagef("%s: port %q: want 1 to 65535", host, port)
	}
	return net.JoinHostPort(strings.ToLower(name), port), true, nil
}

func validPort(p string) bool {
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' || n > 65535 {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n >= 1 && n <= 65535
}

// hostOf is the host part of HOST:PORT.
func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

// pickAddress chooses where to reach an alias's node, as --via says.
func pickAddress(a api.Alias, via string) (string, error) {
	addrIsOnion := a.Address != "" && hiddenservice.IsOnion(hostOf(a.Address))
	switch via {
	case viaTCP:
		if a.Address == "" || addrIsOnion {
			return "", fmt.Errorf("%s has no TCP address (its alias names only the onion %s): drop --via tcp", a.Name, a.Onion+a.Address)
		}
		return a.Address, nil
	case viaOnion:
		if a.Onion != "" {
			return a.Onion, nil
		}
		if addrIsOnion {
			return a.Address, nil
		}
		return "", fmt.Errorf("%s has no onion (its alias names only %s): drop --via onion, "+
			"or rebuild the node with an onion (mkimage saves it in the alias)", a.Name, a.Address)
	}
	if a.Address != "" {
		return a.Address, nil
	}
	return a.Onion, nil
}

// checkVia checks --via.
func checkVia(via string) error {
	switch via {
	case viaAuto, viaTCP, viaOnion:
		return nil
	}
	return usagef("--via %q: want auto, tcp or onion", via)
}

// onionAttempt bounds one connection attempt through tor's SOCKS port;
// tor itself waits up to 2 minutes for a path. A variable for tests.
var onionAttempt = 30 * time.Second

// onionPause is the wait before trying again after a reply that may
// pass. A variable for tests.
var onionPause = time.Second

// onionRetries is how many times a failed or stalled connection
// attempt to an onion is tried again.
const onionRetries = 2

// onionLink is the way to one onion through a tor: its SOCKS port and,
// when cloud has one, its control connection, over which cloud hands
// tor this client's x25519 key and asks for new circuits after a
// stall.
type onionLink struct {
	onion   string                    // ID.onion of the node
	socks   string                    // tor's SOCKS port, HOST:PORT
	ctl     *hiddenservice.Controller // nil: no control connection
	own     *ownTor                   // the tor cloud started, or nil
	key     *ecdh.PrivateKey          // this client's x25519 key
	keyPath string                    // where key is kept
	stderr  io.Writer

	// keyNotGiven says why tor could not be handed the key; "" when
	// it was.
	keyNotGiven string
	mu          sync.Mutex
	stale       bool      // a connection stalled: renew before the next dial
	renewed     time.Time // the last NEWNYM; zero when none
}

// newnymEvery is how often tor takes NEWNYM: one sent sooner is put
// off, and when it is carried out it drops the key added since.
const newnymEvery = 10 * time.Second

// addKey hands tor this client's key for the onion: not permanently, so
// nothing is left in a running tor's own key store unasked. NEWNYM
// drops such keys, so renew adds it again.
func (l *onionLink) addKey(ctx context.Context) error {
	if l.ctl == nil {
		return nil
	}
	err := l.ctl.AddClientAuth(ctx, l.onion, l.key, hiddenservice.ClientAuthOptions{Name: "allium-cloud"})
	if err != nil {
		return fmt.Errorf("handing tor this client's x25519 key (ONION_CLIENT_AUTH_ADD): %w", err)
	}
	return nil
}

// renew asks tor for new circuits (NEWNYM), which also makes it forget
// a dead rendezvous circuit it would otherwise keep attaching streams
// to, and adds the key again.
func (l *onionLink) renew(ctx context.Context) {
	if l.ctl == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	l.mu.Lock()
	recent := !l.renewed.IsZero() && time.Since(l.renewed) < newnymEvery
	if !recent {
		l.renewed = time.Now()
	}
	l.mu.Unlock()
	if recent {
		// tor would put NEWNYM off and then drop the key again.
	} else if err := l.ctl.Signal(ctx, "NEWNYM"); err != nil {
		fmt.Fprintf(l.stderr, "tor: asking for new circuits: %v\n", err)
	}
	if err := l.addKey(ctx); err != nil {
		fmt.Fprintf(l.stderr, "tor: %v\n", err)
	}
}

// sentNewnym reports whether renew has sent NEWNYM.
func (l *onionLink) sentNewnym() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.renewed.IsZero()
}

// markStale makes the next dial renew first.
func (l *onionLink) markStale() {
	l.mu.Lock()
	l.stale = true
	l.mu.Unlock()
}

func (l *onionLink) takeStale() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stale
	l.stale = false
	return s
}

// DialContext connects to addr through tor. An attempt that times out
// or meets a reply that may pass (no descriptor yet, introduction
// failed) is tried again, after new circuits when it timed out, up to
// onionRetries times, each said on stderr.
func (l *onionLink) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	for try := 1; ; try++ {
		if l.takeStale() {
			l.renew(ctx)
		}
		conn, err := l.dialOnce(ctx, network, addr)
		if err == nil {
			return conn, nil
		}
		var se *hiddenservice.SOCKSError
		var slow *attemptTimeout
		switch {
		case ctx.Err() != nil || try > onionRetries:
			return nil, err
		case errors.As(err, &slow):
			fmt.Fprintf(l.stderr, "tor: %v; asking tor for new circuits and trying again (%d of %d)\n", err, try, onionRetries)
			l.markStale()
		case errors.As(err, &se) && se.Code == 0xF4 && l.sentNewnym():
			// A NEWNYM tor put off dropped the key when it was carried out.
			fmt.Fprintf(l.stderr, "tor: lost this client's key after new circuits; handing it over again (%d of %d)\n", try, onionRetries)
			if err := l.addKey(ctx); err != nil {
				return nil, err
			}
		case errors.As(err, &se) && se.Transient():
			fmt.Fprintf(l.stderr, "tor: %s; trying again (%d of %d)\n", socksWords(se.Code), try, onionRetries)
			if sleep(ctx, onionPause) != nil {
				return nil, err
			}
		default:
			return nil, err
		}
	}
}

// dialOnce is one attempt, bounded by onionAttempt.
func (l *onionLink) dialOnce(ctx context.Context, network, addr string) (net.Conn, error) {
	limit := time.Now().Add(onionAttempt)
	actx, cancel := context.WithDeadline(ctx, limit)
	defer cancel()
	d := &hiddenservice.SOCKSDialer{Proxy: l.socks}
	conn, err := d.DialContext(actx, network, addr)
	if err == nil {
		return conn, nil
	}
	// The connection's deadline can fire a moment before actx's timer:
	// it was this attempt's limit unless ctx's own deadline came first.
	outer, ok := ctx.Deadline()
	mine := actx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)
	var op *net.OpError
	switch {
	case errors.As(err, &op) && op.Op == "dial":
		return nil, &torDown{socks: l.socks, err: op.Err}
	case ctx.Err() == nil && mine && (!ok || !outer.Before(limit)):
		return nil, &attemptTimeout{addr: addr, limit: onionAttempt}
	}
	return nil, err
}

// attemptTimeout is a connection attempt through tor that got no
// answer in time.
type attemptTimeout struct {
	addr  string
	limit time.Duration
}

func (e *attemptTimeout) Error() string {
	return fmt.Sprintf("no connection to %s within %v", e.addr, e.limit)
}

// torDown is a tor SOCKS port that cannot be reached.
type torDown struct {
	socks string
	err   error
}

func (e *torDown) Error() string { return fmt.Sprintf("tor's SOCKS port %s: %v", e.socks, e.err) }
func (e *torDown) Unwrap() error { return e.err }

// close ends the control connection and stops cloud's own tor.
func (l *onionLink) close() {
	if l.ctl != nil {
		l.ctl.Close()
	}
	if l.own != nil {
		l.own.close()
	}
}

// uploadProgress wraps an upload's progress callback: when the upload
// to an onion is interrupted (a dropped or stalled circuit), the
// resume asks tor for new circuits first.
func (s *session) uploadProgress(show func(api.UploadProgress)) func(api.UploadProgress) {
	if s.link == nil {
		return show
	}
	resumes := 0
	return func(p api.UploadProgress) {
		if p.Err != nil && p.Resumes != resumes {
			resumes = p.Resumes
			s.link.markStale()
		}
		show(p)
	}
}
