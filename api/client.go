package api

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Client talks to one node.
type Client struct {
	base string
	hc   *http.Client
}

// NewClient makes a client for the node at addr (HOST:PORT) whose key is
// node, authenticating with key.
func NewClient(addr string, key ed25519.PrivateKey, node ed25519.PublicKey) (*Client, error) {
	d := &net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}
	return newTLSClient(addr, key, node, d.DialContext, 15*time.Second)
}

// DialFunc opens a connection to addr, as net.Dialer.DialContext does.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// NewClientDialer is NewClient with the connections made by dial, such
// as a tor SOCKS dialer for a node at ID.onion:PORT: addr is handed to
// dial as it is, unresolved. The key pinning is the same; the TLS
// handshake may take up to a minute, as it can over a fresh onion
// circuit. dial bounds its own connection attempts (and ctx bounds the
// whole request).
func NewClientDialer(addr string, key ed25519.PrivateKey, node ed25519.PublicKey, dial DialFunc) (*Client, error) {
	if dial == nil {
		return nil, errors.New("api: NewClientDialer: no dial function")
	}
	return newTLSClient(addr, key, node, dial, time.Minute)
}

func newTLSClient(addr string, key ed25519.PrivateKey, node ed25519.PublicKey, dial DialFunc, handshake time.Duration) (*Client, error) {
	cfg, err := ClientTLS(key, node)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		TLSClientConfig:     cfg,
		DialContext:         dial,
		TLSHandshakeTimeout: handshake,
		ForceAttemptHTTP2:   false,
		// An upload asks first (Expect: 100-continue), so that the
		// node refuses one that does not fit before its body is sent;
		// a node slow to answer gets the body after this long anyway.
		ExpectContinueTimeout: expectContinue,
	}
	return &Client{base: "https://" + addr, hc: &http.Client{Transport: tr}}, nil
}

// expectContinue is how long an upload waits for the node's 100
// Continue before sending its body: long enough for an answer over a
// tor circuit.
const expectContinue = 10 * time.Second

// NewUnixClient makes a client for the node's own unix socket.
func NewUnixClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		ExpectContinueTimeout: expectContinue,
	}
	return &Client{base: "http://allium", hc: &http.Client{Transport: tr}}
}

// Do sends method path (such as GET /v1/node) with body, and decodes a
// 2xx answer into out unless out is nil; a *json.RawMessage keeps the
// answer exactly as the node sent it. A non-2xx answer is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, body io.Reader, out any) error {
	return c.do(ctx, method, path, body, out)
}

// do sends a request and decodes a 2xx answer into out (when not nil), or
// a JSON error into an *Error.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return decodeError(resp)
	}
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// decodeError makes an *Error of a non-2xx answer, from its JSON body
// or, failing that, its status and text.
func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{Status: resp.StatusCode}
	if json.Unmarshal(b, e) != nil || e.Message == "" {
		e.Message = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
		e.Code = CodeInternal
	}
	return e
}

// stream GETs path and returns the body of a 2xx answer.
func (c *Client) stream(ctx context.Context, path string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp.Body, nil
}

// streamEnd is nil for a stream that ended cleanly, and ctx's error
// for one that ended because ctx did.
func streamEnd(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err == io.EOF:
		return nil
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("the node closed the stream: %w", err)
	}
	return err
}
