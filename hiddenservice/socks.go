package hiddenservice

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"time"
)

// SOCKSDialer dials through a tor SOCKS port (SOCKS5, no
// authentication, names resolved by tor) and turns tor's replies into
// errors that say what went wrong. Give the SocksPort the
// ExtendedErrors flag to get the onion-specific replies (0xF0-0xF7);
// without it tor answers a plain "general failure" or "host
// unreachable". The zero value is unusable: set Proxy.
type SOCKSDialer struct {
	// Proxy is the SOCKS port, host:port.
	Proxy string
	// Dialer dials Proxy; the zero value is fine.
	Dialer net.Dialer
}

// SOCKSError is a SOCKS5 reply other than success.
type SOCKSError struct {
	// Code is the reply code, such as 0xF4.
	Code byte
	// Target is the address that was asked for.
	Target string
}

var socksReplies = map[byte]string{
	0x01: "general failure",
	0x02: "connection not allowed by ruleset",
	0x03: "network unreachable",
	0x04: "host unreachable",
	0x05: "connection refused",
	0x06: "TTL expired",
	0x07: "command not supported",
	0x08: "address type not supported",
	0xF0: "onion service descriptor not found",
	0xF1: "onion service descriptor is invalid",
	0xF2: "onion service introduction failed",
	0xF3: "onion service rendezvous failed",
	0xF4: "onion service requires client authorization",
	0xF5: "onion service client authorization is wrong",
	0xF6: "onion address is invalid",
	0xF7: "onion service introduction timed out",
}

func (e *SOCKSError) Error() string {
	msg, ok := socksReplies[e.Code]
	if !ok {
		msg = "unknown reply"
	}
	s := fmt.Sprintf("tor SOCKS reply 0x%02X (%s) for %s", e.Code, msg, e.Target)
	if w := e.Unwrap(); w != nil {
		s += ": " + w.Error()
	}
	return s
}

// Unwrap maps the onion replies to this package's errors:
// ErrClientAuth, ErrOnionUnreachable and ErrBadOnion.
func (e *SOCKSError) Unwrap() error {
	switch e.Code {
	case 0xF4, 0xF5:
		return ErrClientAuth
	case 0xF0, 0xF1, 0xF2, 0xF3, 0xF7:
		return ErrOnionUnreachable
	case 0xF6:
		return ErrBadOnion
	}
	return nil
}

// Transient reports whether a retry may succeed: right after a service
// publishes, a client can still miss its descriptor (0xF0) or an
// introduction point (0xF2, 0xF3, 0xF7). Client authorization (0xF4,
// 0xF5) and a bad address (0xF6) do not change by retrying.
func (e *SOCKSError) Transient() bool {
	switch e.Code {
	case 0xF4, 0xF5, 0xF6, 0x02, 0x07, 0x08:
		return false
	}
	return true
}

// xnetReply matches how golang.org/x/net/proxy reports a reply it does
// not know: "unknown error unknown code: 244".
var xnetReply = regexp.MustCompile(`unknown code: (\d+)`)

// MapSOCKSError turns an error from golang.org/x/net/proxy, which
// reports tor's extended replies only as text, into a *SOCKSError
// (wrapping err) when it names a reply code; otherwise it returns err.
func MapSOCKSError(err error, target string) error {
	var se *SOCKSError
	if err == nil || errors.As(err, &se) {
		return err
	}
	m := xnetReply.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	code, convErr := strconv.Atoi(m[1])
	if convErr != nil || code > 255 {
		return err
	}
	return &SOCKSError{Code: byte(code), Target: target}
}

// DialContext connects to addr ("host:port", host may be an onion)
// through the proxy. network must be "tcp".
func (d *SOCKSDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if network != "tcp" && network != "tcp4" && network != "tcp6" {
		return nil, fmt.Errorf("hiddenservice: socks: network %q: only tcp", network)
	}
	req, err := connectRequest(addr)
	if err != nil {
		return nil, err
	}
	conn, err := d.Dialer.DialContext(ctx, "tcp", d.Proxy)
	if err != nil {
		return nil, fmt.Errorf("hiddenservice: tor SOCKS port %s: %w", d.Proxy, err)
	}
	err = withDeadline(ctx, conn, 2*time.Minute, func() error { return handshake(conn, req, addr) })
	if err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// connectRequest is a SOCKS5 CONNECT for a domain name.
func connectRequest(addr string) ([]byte, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("hiddenservice: socks: %w", err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || len(host) == 0 || len(host) > 255 {
		return nil, fmt.Errorf("hiddenservice: socks: bad address %q", addr)
	}
	req := []byte{5, 1, 0, 3, byte(len(host))}
	req = append(req, host...)
	return binary.BigEndian.AppendUint16(req, uint16(p)), nil
}

// handshake greets the proxy (no authentication), sends req and reads
// the reply, bound address included, so the stream starts clean.
func handshake(conn net.Conn, req []byte, target string) error {
	if _, err := conn.Write([]byte{5, 1, 0}); err != nil {
		return fmt.Errorf("hiddenservice: socks: %w", err)
	}
	var b [262]byte
	if _, err := io.ReadFull(conn, b[:2]); err != nil || b[0] != 5 || b[1] != 0 {
		return fmt.Errorf("hiddenservice: socks: the proxy refused the greeting (%x, %v)", b[:2], err)
	}
	if _, err := conn.Write(req); err != nil {
		return fmt.Errorf("hiddenservice: socks: %w", err)
	}
	if _, err := io.ReadFull(conn, b[:5]); err != nil {
		return fmt.Errorf("hiddenservice: socks: %w", err)
	}
	if b[1] != 0 {
		return &SOCKSError{Code: b[1], Target: target}
	}
	// b[4] is the bound address's first byte; read the rest and the port.
	var n int
	switch b[3] {
	case 1:
		n = 4 - 1 + 2
	case 4:
		n = 16 - 1 + 2
	case 3:
		n = int(b[4]) + 2
	default:
		return fmt.Errorf("hiddenservice: socks: reply with address type %d", b[3])
	}
	if _, err := io.ReadFull(conn, b[:n]); err != nil {
		return fmt.Errorf("hiddenservice: socks: %w", err)
	}
	return nil
}
