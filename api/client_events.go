package api

import (
	"context"
	"encoding/json"
)

// Events calls fn with each event, oldest first, then (with follow)
// with each new one until ctx ends or fn fails.
func (c *Client) Events(ctx context.Context, follow bool, fn func(Event) error) error {
	path := "/v1/events"
	if follow {
		path += "?follow=1"
	}
	body, err := c.stream(ctx, path)
	if err != nil {
		return err
	}
	defer body.Close()
	dec := json.NewDecoder(body)
	for {
		var e Event
		if err := dec.Decode(&e); err != nil {
			return streamEnd(ctx, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}
