package api

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
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
	node       Node
	authorized ed25519.PublicKey
	panicOnce  atomic.Bool // Node panics once when set

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

func (b *fakeBackend) SetTCP(on bool) error {
	b.tcpSwitches.Add(1)
	b.node.TCP = map[bool]string{true: ":7707", false: "off"}[on]
	return nil
}

func (b *fakeBackend) Authorize(key ed25519.PublicKey) (string, bool) {
	b.auths.Add(1)
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
	cfg, err := ClientTLS(n.client, n.key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(t.Context(), method, "https://"+n.addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
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

func TestAuthorizedClientGetsNode(t *testing.T) {
	n := startNode(t)
	got, err := n.dial(t, n.client).Node(t.Context())
	if err != nil {
		t.Fatalf("Node() = %v", err)
	}
	if got.Name != "web1" || got.Environment != EnvVM || !got.Persistent {
		t.Errorf("Node() = %+v, want the backend's node %+v", got, n.backend.node)
	}
}

func TestUnknownClientKeyIsRefused(t *testing.T) {
	n := startNode(t)
	stranger := newKey(t)
	c := n.dial(t, stranger)
	calls := map[string]func(context.Context) error{
		"Node":     func(ctx context.Context) error { _, err := c.Node(ctx); return err },
		"Reboot":   c.Reboot,
		"Poweroff": c.Poweroff,
	}
	for name, call := range calls {
		err := call(t.Context())
		var e *Error
		if !errors.As(err, &e) || e.Status != http.StatusUnauthorized || e.Code != CodeUnauthorized {
			t.Fatalf("%s() with an unknown key = %v, want *Error 401 %q", name, err, CodeUnauthorized)
		}
		if fp := Fingerprint(stranger.Public().(ed25519.PublicKey)); !strings.Contains(e.Message, fp) {
			t.Errorf("%s() error %q does not name the refused key %s", name, e.Message, fp)
		}
	}
	b := n.backend
	if b.reboots.Load() != 0 || b.poweroffs.Load() != 0 || b.nodes.Load() != 0 {
		t.Errorf("an unknown client reached the backend: %d Node, %d Reboot, %d Poweroff",
			b.nodes.Load(), b.reboots.Load(), b.poweroffs.Load())
	}
}

func TestWrongPinnedNodeKey(t *testing.T) {
	n := startNode(t)
	impostor := newKey(t).Public().(ed25519.PublicKey)
	c, err := NewClient(n.addr, n.client, impostor)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Reboot(t.Context())
	if !errors.Is(err, ErrNodeKey) {
		t.Fatalf("Reboot() pinning the wrong node key = %v, want an error wrapping ErrNodeKey", err)
	}
	for _, fp := range []string{Fingerprint(impostor), Fingerprint(n.key.Public().(ed25519.PublicKey))} {
		if !strings.Contains(err.Error(), fp) {
			t.Errorf("Reboot() error %q does not show fingerprint %s", err, fp)
		}
	}
	// The handshake fails before the server sees a request: not even the
	// key check ran.
	if a, r := n.backend.auths.Load(), n.backend.reboots.Load(); a != 0 || r != 0 {
		t.Errorf("the request was sent anyway: %d Authorize, %d Reboot calls", a, r)
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

func TestRebootAndPoweroff(t *testing.T) {
	n := startNode(t)
	c := n.dial(t, n.client)
	if err := c.Reboot(t.Context()); err != nil {
		t.Errorf("Reboot() = %v", err)
	}
	if err := c.Poweroff(t.Context()); err != nil {
		t.Errorf("Poweroff() = %v", err)
	}
	if r, p := n.backend.reboots.Load(), n.backend.poweroffs.Load(); r != 1 || p != 1 {
		t.Errorf("backend saw %d Reboot and %d Poweroff, want 1 each", r, p)
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
