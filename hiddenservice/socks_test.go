package hiddenservice

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// fakeSOCKS accepts one SOCKS5 CONNECT, checks the target, and answers
// with reply code rep; on success it echoes what follows.
func fakeSOCKS(t *testing.T, rep byte, wantTarget string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var b [262]byte
		io.ReadFull(c, b[:3]) // 5 1 0
		c.Write([]byte{5, 0})
		io.ReadFull(c, b[:5]) // 5 1 0 3 len
		n := int(b[4])
		io.ReadFull(c, b[:n+2])
		if got := string(b[:n]); got != wantTarget {
			t.Errorf("SOCKS target = %q, want %q", got, wantTarget)
		}
		c.Write([]byte{5, rep, 0, 1, 0, 0, 0, 0, 0, 0})
		if rep == 0 {
			io.Copy(c, c)
		}
	}()
	return ln.Addr().String()
}

func TestSOCKSDialer(t *testing.T) {
	target := rfc8032ID + ".onion"
	d := &SOCKSDialer{Proxy: fakeSOCKS(t, 0, target)}
	c, err := d.DialContext(ctxT(t), "tcp", target+":80")
	if err != nil {
		t.Fatalf("DialContext = %v", err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	var b [4]byte
	if _, err := io.ReadFull(c, b[:]); err != nil || string(b[:]) != "ping" {
		t.Errorf("after the handshake read %q, %v, want the echo", b, err)
	}
}

func TestSOCKSDialerErrors(t *testing.T) {
	target := rfc8032ID + ".onion"
	for code, want := range map[byte]error{0xF4: ErrClientAuth, 0xF5: ErrClientAuth, 0xF0: ErrOnionUnreachable, 0xF2: ErrOnionUnreachable, 0xF6: ErrBadOnion, 0x01: nil} {
		d := &SOCKSDialer{Proxy: fakeSOCKS(t, code, target)}
		_, err := d.DialContext(ctxT(t), "tcp", target+":80")
		var se *SOCKSError
		if !errors.As(err, &se) || se.Code != code || (want != nil && !errors.Is(err, want)) {
			t.Errorf("reply 0x%02X: DialContext = %v, want a SOCKSError wrapping %v", code, err, want)
		}
	}
	if (&SOCKSError{Code: 0xF4}).Transient() || !(&SOCKSError{Code: 0xF0}).Transient() {
		t.Error("0xF4 must not be transient, 0xF0 must")
	}
}

// A SOCKS port that never answers does not hang the dialer past its
// context.
func TestSOCKSDialerDeadline(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(2 * time.Second)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := (&SOCKSDialer{Proxy: ln.Addr().String()}).DialContext(ctx, "tcp", "x.onion:80"); err == nil || time.Since(start) > time.Second {
		t.Errorf("DialContext to a mute proxy = %v after %s", err, time.Since(start))
	}
}

func TestMapSOCKSError(t *testing.T) {
	xnet := errors.New("socks connect tcp 127.0.0.1:9050->x.onion:80: unknown error unknown code: 244")
	err := MapSOCKSError(xnet, "x.onion:80")
	var se *SOCKSError
	if !errors.As(err, &se) || se.Code != 0xF4 || !errors.Is(err, ErrClientAuth) {
		t.Errorf("MapSOCKSError(%v) = %v, want 0xF4", xnet, err)
	}
	plain := errors.New("connection refused")
	if MapSOCKSError(plain, "x") != plain || MapSOCKSError(nil, "x") != nil {
		t.Error("MapSOCKSError changed an error without a reply code")
	}
}
