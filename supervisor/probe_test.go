package supervisor

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestTCPProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := (TCPProbe{Addr: addr}).Check(context.Background()); err != nil {
		t.Errorf("TCPProbe(%s) on a listener = %v, want nil", addr, err)
	}
	ln.Close()
	if err := (TCPProbe{Addr: addr}).Check(context.Background()); err == nil {
		t.Errorf("TCPProbe(%s) on a closed port = nil, want an error", addr)
	}
}

func TestHTTPProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
		case "/moved":
			http.Redirect(w, r, "/ok", http.StatusFound)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	tests := map[string]bool{"/ok": true, "/moved": false, "/busy": false}
	for path, ready := range tests {
		err := HTTPProbe{URL: srv.URL + path}.Check(context.Background())
		if (err == nil) != ready {
			t.Errorf("HTTPProbe(%s) = %v, want ready %v", path, err, ready)
		}
	}
}

type countProbe struct{ n *int }

func (p countProbe) Check(ctx context.Context) error {
	*p.n++
	return context.DeadlineExceeded
}

func TestWaitReadyTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := 0
		start := time.Now()
		err := waitReady(context.Background(), countProbe{&n}, 10*time.Second)
		if err == nil || !strings.Contains(err.Error(), "not ready within 10s") {
			t.Errorf("waitReady = %v, want not ready within 10s", err)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("waitReady gave up after %v, want by 10s", took)
		}
		if want := int(10 * time.Second / ProbeInterval); n != want {
			t.Errorf("checks = %d, want one per %v: %d", n, ProbeInterval, want)
		}
	})
}

func TestWaitReadyCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(time.Second, cancel)
		n := 0
		if err := waitReady(ctx, countProbe{&n}, time.Hour); err != context.Canceled {
			t.Errorf("waitReady(cancelled) = %v, want context.Canceled", err)
		}
	})
}
