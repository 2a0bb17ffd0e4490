package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
)

// Node returns the node's identity and health.
func (c *Client) Node(ctx context.Context) (Node, error) {
	var n Node
	err := c.do(ctx, http.MethodGet, "/v1/node", nil, &n)
	return n, err
}

// Reboot asks the node to reboot; it answers before it goes down.
func (c *Client) Reboot(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/node/reboot", nil, nil)
}

// Poweroff asks the node to power off; it answers before it goes down.
func (c *Client) Poweroff(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/node/poweroff", nil, nil)
}

// Uninstall asks the node to undo its install and reboot into the system
// it was installed over; it answers, with what it did, before it goes
// down.
func (c *Client) Uninstall(ctx context.Context) (Accepted, error) {
	var a Accepted
	err := c.do(ctx, http.MethodPost, "/v1/node/uninstall", nil, &a)
	return a, err
}

// SetTCP switches the node's TCP listener (PUT /v1/node/tcp).
func (c *Client) SetTCP(ctx context.Context, req TCPRequest) (TCPState, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return TCPState{}, err
	}
	var st TCPState
	err = c.do(ctx, http.MethodPut, "/v1/node/tcp", bytes.NewReader(b), &st)
	return st, err
}

// SwitchInit asks the node to switch to its staged init of digest
// (POST /v1/node/update). It answers before it switches: poll Node for
// the new version.
func (c *Client) SwitchInit(ctx context.Context, digest string) (Accepted, error) {
	b, err := json.Marshal(UpdateRequest{Digest: digest})
	if err != nil {
		return Accepted{}, err
	}
	var a Accepted
	err = c.do(ctx, http.MethodPost, "/v1/node/update", bytes.NewReader(b), &a)
	return a, err
}
