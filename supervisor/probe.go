package supervisor

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Probe is one readiness check. The supervisor calls Check every
// ProbeInterval from the start of a run until it returns nil (ready) or
// the spec's ReadyTimeout passes (not ready: stopped, counted as a
// failure).
type Probe interface {
	Check(ctx context.Context) error
}

// ProbeInterval is the pause between two readiness checks.
const ProbeInterval = 500 * time.Millisecond

// probeAttempt bounds one check.
const probeAttempt = 2 * time.Second

// TCPProbe is ready once Addr ("127.0.0.1:8080") accepts a connection.
type TCPProbe struct{ Addr string }

func (p TCPProbe) Check(ctx context.Context) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.Addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// HTTPProbe is ready once a GET of URL answers 2xx. It uses no proxy
// and follows no redirect.
type HTTPProbe struct{ URL string }

var probeClient = &http.Client{
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

func (p HTTPProbe) Check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err != nil {
		return err
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: %s", p.URL, resp.Status)
	}
	return nil
}

// waitReady runs p until it succeeds, ctx ends, or timeout passes; it
// returns nil when ready and the last error otherwise.
func waitReady(ctx context.Context, p Probe, timeout time.Duration) error {
	return waitReadyUntil(ctx, p, timeout, time.Now().Add(timeout))
}

// waitReadyUntil is waitReady with the deadline given (an adopted
// run's, set by the previous supervisor); timeout is for the message.
func waitReadyUntil(ctx context.Context, p Probe, timeout time.Duration, deadline time.Time) error {
	for {
		actx, cancel := context.WithTimeout(ctx, max(0, min(probeAttempt, time.Until(deadline))))
		err := p.Check(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !time.Now().Add(ProbeInterval).Before(deadline) {
			return fmt.Errorf("not ready within %v: %w", timeout, err)
		}
		t := time.NewTimer(ProbeInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
