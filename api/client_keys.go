package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// Keys lists the node's authorized client keys; You marks this
// client's own.
func (c *Client) Keys(ctx context.Context) ([]KeyInfo, error) {
	var keys []KeyInfo
	err := c.do(ctx, http.MethodGet, "/v1/keys", nil, &keys)
	return keys, err
}

// AddKey authorizes a client key and returns it as the node stored it,
// and whether it was new (false: the same key was there already, as
// after a retried request).
func (c *Client) AddKey(ctx context.Context, req KeyRequest) (KeyInfo, bool, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return KeyInfo{}, false, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/keys", bytes.NewReader(body))
	if err != nil {
		return KeyInfo{}, false, err
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(hr)
	if err != nil {
		return KeyInfo{}, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return KeyInfo{}, false, decodeError(resp)
	}
	var k KeyInfo
	if err := json.NewDecoder(resp.Body).Decode(&k); err != nil {
		return KeyInfo{}, false, fmt.Errorf("POST /v1/keys: decoding the answer: %w", err)
	}
	return k, resp.StatusCode == http.StatusCreated, nil
}

// RemoveKey removes the key that id names (a name, a fingerprint or
// the key itself) and returns it.
func (c *Client) RemoveKey(ctx context.Context, id string) (KeyInfo, error) {
	var k KeyInfo
	err := c.do(ctx, http.MethodDelete, "/v1/keys/"+url.PathEscape(id), nil, &k)
	return k, err
}
