package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeBackend counts what the server asked of it.
type fakeBackend struct {
	UnimplementedApps
	UnimplementedKeys
	fakeInits
	node       Node
	authorized ed25519.PublicKey
	viewer     ed25519.PublicKey // Authorize says RoleViewer for it
	panicOnce  atomic.Bool       // Node panics once when set
	installed  string            // Uninstall succeeds when set

	nodes, reboots, poweroffs, auths, tcpSwitches atomic.Int32
}

func (b *fakeBackend) Node(context.Context) (Node, error) {
	b.nodes.Add(1)
	if b.panicOnce.Swap(false) {
		panic("fake backend: boom")
	}
	return b.node, nil
}

func (b *fakeBackend) Reboot() error   { b.reboots.Add(1); return nil }
func (b *fakeBackend) Poweroff() error { b.poweroffs.Add(1); return nil }
func (b *fakeBackend) Uninstall() (string, error) {
	if b.installed == "" {
		return "", errors.New("this node was not installed over another system")
	}
	b.reboots.Add(1)
	return "rebooting into the old system (" + b.installed + ")", nil
}

func (b *fakeBackend) SetTCP(on bool) error {
	b.tcpSwitches.Add(1)
	b.node.TCP = map[bool]string{true: ":7707", false: "off"}[on]
	return nil
}

func (b *fakeBackend) Authorize(key ed25519.PublicKey) (string, bool) {
	b.auths.Add(1)
	if b.viewer != nil && key.Equal(b.viewer) {
		return RoleViewer, true
	}
	return RoleAdmin, key.Equal(b.authorized)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testNode is a server on a loopback TLS listener.
type testNode struct {
	addr    string
	key     ed25519.PrivateKey // the node's
	client  ed25519.PrivateKey // an authorized client's
	backend *fakeBackend
	server  *Server
}

func startNode(t *testing.T) *testNode {
	t.Helper()
	return startNodeWith(t, Limits{})
}

// startNodeWith is startNode with lim on its listener.
func startNodeWith(t *testing.T, lim Limits) *testNode {
	t.Helper()
	n := &testNode{key: newKey(t), client: newKey(t)}
	n.backend = &fakeBackend{
		node:       Node{Name: "web1", Version: "test", Environment: EnvVM, Persistent: true},
		authorized: n.client.Public().(ed25519.PublicKey),
	}
	srv, err := NewServer(n.backend, n.key, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	n.server = srv
	srv.TCP = lim
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.addr = ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("ServeTLS() = %v, want nil after Shutdown", err)
		}
	})
	return n
}

// dial makes a client for n that authenticates with key.
func (n *testNode) dial(t *testing.T, key ed25519.PrivateKey) *Client {
	t.Helper()
	c, err := NewClient(n.addr, key, n.key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// raw sends method path with the authorized key and returns the status,
// the header and the body as sent.
func (n *testNode) raw(t *testing.T, method, path string) (int, http.Header, []byte) {
	t.Helper()
	resp, body := n.send(t, n.request(t, method, path, nil))
	return resp.StatusCode, resp.Header, body
}

// wantJSONError checks that body is exactly {"error": ..., "code": code}.
func wantJSONError(t *testing.T, what string, body []byte, code string) {
	t.Helper()
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%s: body %q is not JSON: %v", what, body, err)
	}
	msg, _ := got["error"].(string)
	if got["code"] != code || msg == "" || len(got) != 2 {
		t.Errorf("%s: body = %s, want {\"error\": \"...\", \"code\": %q}", what, body, code)
	}
}

func TestPanickingHandlerAnswers500(t *testing.T) {
	n := startNode(t)
	n.backend.panicOnce.Store(true)
	status, _, body := n.raw(t, http.MethodGet, "/v1/node")
	if status != http.StatusInternalServerError {
		t.Errorf("GET /v1/node with a panicking backend: status %d, want 500", status)
	}
	wantJSONError(t, "GET /v1/node with a panicking backend", body, CodeInternal)
	if _, err := n.dial(t, n.client).Node(t.Context()); err != nil {
		t.Errorf("Node() after a panic = %v, want the server still serving", err)
	}
}

func TestUnknownEndpoint(t *testing.T) {
	n := startNode(t)
	for _, path := range []string{"/", "/v1/nosuch", "/v1/node/nosuch", "/v2/node"} {
		status, _, body := n.raw(t, http.MethodGet, path)
		if status != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, status)
		}
		wantJSONError(t, "GET "+path, body, CodeNotFound)
	}
}

// TestWrongMethod guards against the "/" catch-all taking a known path
// with the wrong method: ServeMux routed POST /v1/node there, and it
// answered 404 "no such endpoint" instead of 405.
func TestWrongMethod(t *testing.T) {
	n := startNode(t)
	tests := []struct{ method, path, allow string }{
		{http.MethodPost, "/v1/node", "GET, HEAD"},
		{http.MethodDelete, "/v1/node", "GET, HEAD"},
		{http.MethodGet, "/v1/node/reboot", "POST"},
		{http.MethodPut, "/v1/node/poweroff", "POST"},
		{http.MethodPost, "/v1/images", "GET, HEAD"},
		{http.MethodPost, "/v1/images/" + zeroDigest, "GET, HEAD, PUT, DELETE"},
		{http.MethodGet, "/v1/containers/foo/stop", "POST"},
		{http.MethodPost, "/v1/events", "GET, HEAD"},
	}
	for _, tt := range tests {
		status, header, body := n.raw(t, tt.method, tt.path)
		if status != http.StatusMethodNotAllowed || header.Get("Allow") != tt.allow {
			t.Errorf("%s %s: status %d, Allow %q, want 405 and %q", tt.method, tt.path, status, header.Get("Allow"), tt.allow)
		}
		wantJSONError(t, tt.method+" "+tt.path, body, CodeMethod)
	}
	if r, p := n.backend.reboots.Load(), n.backend.poweroffs.Load(); r != 0 || p != 0 {
		t.Errorf("a wrong method reached the backend: %d Reboot, %d Poweroff", r, p)
	}
}

func TestDoKeepsTheRawAnswer(t *testing.T) {
	n := startNode(t)
	var raw json.RawMessage
	if err := n.dial(t, n.client).Do(t.Context(), http.MethodPost, "/v1/node/reboot", nil, &raw); err != nil {
		t.Fatalf("Do(POST /v1/node/reboot) = %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil || got["status"] != "rebooting" || len(got) != 1 {
		t.Errorf("Do(POST /v1/node/reboot) kept %s, want {\"status\": \"rebooting\"}", raw)
	}
}

// send makes a request with the authorized key and returns the answer
// with its body read.
func (n *testNode) send(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	cfg, err := ClientTLS(n.client, n.key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func (n *testNode) request(t *testing.T, method, path string, body []byte, header ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "https://"+n.addr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return req
}

// wantStatus checks err is an *Error with status and code.
func wantStatus(t *testing.T, what string, err error, status int, code string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Status != status || e.Code != code {
		t.Fatalf("%s = %v, want an *Error %d %q", what, err, status, code)
	}
	return e
}

func newFuzzKey(tb testing.TB) ed25519.PrivateKey {
	tb.Helper()
	k, err := NewKey()
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// testLoggerTB is quiet: a fuzz target would log every iteration.
func testLoggerTB(testing.TB) *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestErrorStatuses(t *testing.T) {
	n, apps := startApps(t)
	c := n.dial(t, n.client)
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{Conflict("image is used by foo"), 409, CodeConflict},
		{fmt.Errorf("wrapped: %w", TooLarge("over the cap")), 413, CodeTooLarge},
		{Unavailable("shutting down"), 503, CodeUnavailable},
		{BadRequest("bad"), 400, CodeBadRequest},
		{NotImplemented("later"), 501, CodeNotImplemented},
		{errors.New("disk on fire"), 500, CodeInternal},
	}
	for _, tt := range tests {
		apps.fail = tt.err
		err := c.RemoveImage(t.Context(), zeroDigest)
		e := wantStatus(t, fmt.Sprintf("RemoveImage() failing with %v", tt.err), err, tt.status, tt.code)
		if !strings.Contains(tt.err.Error(), e.Message) {
			t.Errorf("RemoveImage() failing with %v: message %q, want the backend's", tt.err, e.Message)
		}
	}
}

// message is the text of a JSON error body.
func message(body []byte) string {
	var e Error
	json.Unmarshal(body, &e)
	return e.Message
}

func wantLine[T comparable](t *testing.T, ch <-chan T, want T) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("streamed %v, want %v", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("nothing streamed within 10s, want %v", want)
	}
}

// serve serves b as n on a loopback TLS listener until the test ends.
func (n *testNode) serve(t *testing.T, b Backend) {
	t.Helper()
	srv, err := NewServer(b, n.key, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.addr, n.server = ln.Addr().String(), srv
	go srv.ServeTLS(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
}

func TestViaNamesTheListener(t *testing.T) {
	n := startNode(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go n.server.ServeOnion(ln)
	n.addr = ln.Addr().String()
	n.backend.node.Tor = nil
	// Over the onion listener there is no lock-out to fear: TCP is not
	// the caller's way in.
	if st, err := n.dial(t, n.client).SetTCP(t.Context(), TCPRequest{Enabled: false}); err != nil || st.TCP != "off" {
		t.Errorf("SetTCP(off) through the onion listener = %+v, %v, want tcp off", st, err)
	}
	// And the onion listener checks keys as TCP does.
	if _, err := n.dial(t, newKey(t)).Node(t.Context()); err == nil {
		t.Errorf("an unknown key got through the onion listener")
	}
}
