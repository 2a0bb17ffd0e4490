package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
)

// Containers lists the containers on the node.
func (c *Client) Containers(ctx context.Context) ([]Container, error) {
	var cs []Container
	err := c.do(ctx, http.MethodGet, "/v1/containers", nil, &cs)
	return cs, err
}

// Container returns one container.
func (c *Client) Container(ctx context.Context, name string) (Container, error) {
	var ct Container
	err := c.do(ctx, http.MethodGet, containerPath(name), nil, &ct)
	return ct, err
}

// ContainerStats reads what a container uses now.
func (c *Client) ContainerStats(ctx context.Context, name string) (ContainerStats, error) {
	var st ContainerStats
	err := c.do(ctx, http.MethodGet, containerPath(name)+"/stats", nil, &st)
	return st, err
}

// PutContainer creates and starts a container, or replaces its image.
func (c *Client) PutContainer(ctx context.Context, name string, req ContainerRequest) (Container, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return Container{}, err
	}
	var ct Container
	err = c.do(ctx, http.MethodPut, containerPath(name), bytes.NewReader(b), &ct)
	return ct, err
}

// StartContainer starts a stopped container (and clears a crashloop).
func (c *Client) StartContainer(ctx context.Context, name string) (Container, error) {
	return c.containerAction(ctx, name, "start")
}

// StopContainer stops a container; it may answer while it is stopping.
func (c *Client) StopContainer(ctx context.Context, name string) (Container, error) {
	return c.containerAction(ctx, name, "stop")
}

// RestartContainer stops and starts a container.
func (c *Client) RestartContainer(ctx context.Context, name string) (Container, error) {
	return c.containerAction(ctx, name, "restart")
}

// SignalContainer sends signal ("" for SIGKILL) to the container's
// workload; the restart policy then applies.
func (c *Client) SignalContainer(ctx context.Context, name, signal string) (Container, error) {
	body, err := json.Marshal(SignalRequest{Signal: signal})
	if err != nil {
		return Container{}, err
	}
	var ct Container
	err = c.do(ctx, http.MethodPost, containerPath(name)+"/kill", bytes.NewReader(body), &ct)
	return ct, err
}

func (c *Client) containerAction(ctx context.Context, name, action string) (Container, error) {
	var ct Container
	err := c.do(ctx, http.MethodPost, containerPath(name)+"/"+action, nil, &ct)
	return ct, err
}

// RemoveContainer stops and removes a container; its volumes are kept.
func (c *Client) RemoveContainer(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, containerPath(name), nil, nil)
}

// maxLine is the longest piece of a log line Logs delivers at once.
const maxLine = 64 << 10

// Logs calls line with each log line ("RFC3339NANO STREAM LINE", without
// the newline) until the stream ends, ctx ends or line fails. A line
// longer than 64 KiB comes in pieces.
func (c *Client) Logs(ctx context.Context, name string, opts LogOptions, line func(string) error) error {
	q := url.Values{}
	if opts.Tail >= 0 {
		q.Set("tail", strconv.Itoa(opts.Tail))
	}
	if opts.Follow {
		q.Set("follow", "1")
	}
	body, err := c.stream(ctx, containerPath(name)+"/logs?"+q.Encode())
	if err != nil {
		return err
	}
	defer body.Close()
	br := bufio.NewReaderSize(body, maxLine)
	for {
		s, err := br.ReadSlice('\n')
		if len(s) > 0 {
			if err := line(string(bytes.TrimSuffix(s, []byte("\n")))); err != nil {
				return err
			}
		}
		if err != nil && err != bufio.ErrBufferFull {
			return streamEnd(ctx, err)
		}
	}
}

func containerPath(name string) string { return "/v1/containers/" + url.PathEscape(name) }
