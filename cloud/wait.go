package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"allium/api"
)

// Polling a container's state starts fast and slows down.
var (
	pollFirst = 20 * time.Millisecond // doubling: a start seldom takes more than a few polls
	pollMax   = time.Second
)

// errWaiting means the container has not got there yet.
var errWaiting = errors.New("waiting")

// poll GETs the container until outcome says it is done (nil or an
// error other than errWaiting) or limit passes, printing each state it
// passes through.
func (g *globals) poll(ctx context.Context, s *session, name string, limit time.Duration, outcome func(api.Container) error) (api.Container, error) {
	deadline := time.Now().Add(limit)
	shown := ""
	for delay := pollFirst; ; delay = min(2*delay, pollMax) {
		c, err := s.get(ctx, name)
		if err != nil {
			return c, err
		}
		if err := outcome(c); err != errWaiting {
			return c, err
		}
		if c.State != shown {
			fmt.Fprintf(g.stdout, "%s: %s\n", name, describe(c))
			shown = c.State
		}
		if time.Now().Add(delay).After(deadline) {
			return c, fmt.Errorf("%s is still %s after %v (--wait); see cloud ps %s and cloud logs %s %s",
				name, c.State, limit, s.name, s.name, name)
		}
		if err := sleep(ctx, delay); err != nil {
			return c, err
		}
	}
}

func (s *session) get(ctx context.Context, name string) (api.Container, error) {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	c, err := s.client.Container(ctx, name)
	if err != nil {
		return c, s.explain(err)
	}
	return c, nil
}

// waitUp waits until the container runs digest (any image when digest
// is ""), and explains a failure with the last lines of its log. With
// before, what the container was before an action, it waits for a run
// or an exit that came after it: neither the run before nor its exit
// is an answer.
func (g *globals) waitUp(ctx context.Context, s *session, name, digest string, limit time.Duration, before *api.Container) error {
	c, err := g.poll(ctx, s, name, limit, func(c api.Container) error {
		switch {
		case before != nil && !since(c, *before),
			digest != "" && c.Image != digest, c.State == api.StateStarting, c.State == api.StateStopping,
			// Asked to run but not yet picked up by the node's supervisor.
			c.State == api.StateStopped && c.Desired == "running":
			return errWaiting
		case c.State == api.StateRunning:
			return nil
		}
		return errFailed
	})
	if errors.Is(err, errFailed) {
		return g.didNotStart(ctx, s, c)
	}
	if err == nil {
		fmt.Fprintf(g.stdout, "%s is running%s\n", name, runDetails(c))
	}
	return err
}

var errFailed = errors.New("failed")

// since reports whether c shows something that happened after before:
// another run, or another exit than before's last.
func since(c, before api.Container) bool {
	switch c.State {
	case api.StateRunning, api.StateStarting:
		return !c.Started.Equal(before.Started) || c.PID != before.PID
	case api.StateStopping:
		return true
	}
	if c.LastExit == nil {
		return before.LastExit == nil && c.State != before.State
	}
	return before.LastExit == nil || !c.LastExit.Time.Equal(before.LastExit.Time)
}

// waitDown waits until the container is no longer stopping.
func (g *globals) waitDown(ctx context.Context, s *session, name string, limit time.Duration) error {
	_, err := g.poll(ctx, s, name, limit, func(c api.Container) error {
		if c.State == api.StateStopping {
			return errWaiting
		}
		return nil
	})
	return err
}

// didNotStart says why the container is not running and what the node
// will do about it, after the last lines of its log.
func (g *globals) didNotStart(ctx context.Context, s *session, c api.Container) error {
	g.showTail(ctx, s, c.Name, 10)
	why := c.State
	if c.LastExit != nil {
		why = exitText(c.LastExit)
	}
	if c.Error != "" {
		why += ": " + c.Error
	}
	return fmt.Errorf("%s did not start: %s; %s\nSee cloud logs %s %s", c.Name, why, next(c), s.name, c.Name)
}

// next says what the node does with a container that is down.
func next(c api.Container) string {
	switch c.State {
	case api.StateBackoff:
		if !c.NextRestart.IsZero() {
			return fmt.Sprintf("the node restarts it in %v, and keeps trying", until(c.NextRestart))
		}
		return "the node restarts it after a delay, and keeps trying"
	case api.StateCrashloop:
		return "it failed too often and is in crashloop: the node retries every 30 minutes, and a start retries now"
	case api.StateExited:
		return "it will not be restarted (exit 125, or its restart policy)"
	case api.StateStopped:
		return "it was stopped"
	}
	return "fix the image or the node, and start it again"
}

// showTail prints the last n lines of the container's log on stderr;
// failing to get them is not worth more than a line.
func (g *globals) showTail(ctx context.Context, s *session, name string, n int) {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	var lines []string
	err := s.client.Logs(ctx, name, api.LogOptions{Tail: n}, func(l string) error {
		lines = append(lines, l)
		return nil
	})
	if err != nil {
		fmt.Fprintf(g.stderr, "(its log: %v)\n", s.explain(err))
		return
	}
	if len(lines) > 0 {
		fmt.Fprintf(g.stderr, "last lines of the log of %s:\n  %s\n", name, strings.Join(lines, "\n  "))
	}
}

// describe is a state in words.
func describe(c api.Container) string {
	switch c.State {
	case api.StateStarting:
		return "starting (waiting until it is ready)"
	case api.StateStopping:
		return "stopping"
	case api.StateRunning:
		return "running" + runDetails(c)
	case api.StateStopped:
		if c.Desired == "running" {
			return "starting (the node is preparing it)"
		}
	}
	return c.State
}

func runDetails(c api.Container) string {
	var d []string
	if c.PID != 0 {
		d = append(d, fmt.Sprintf("pid %d", c.PID))
	}
	if c.Isolation != "" {
		d = append(d, "isolation "+c.Isolation)
	}
	if len(d) == 0 {
		return ""
	}
	return " (" + strings.Join(d, ", ") + ")"
}

// exitText says how a run ended.
func exitText(e *api.Exit) string {
	if e.Signal != "" {
		return "killed by " + e.Signal
	}
	return fmt.Sprintf("exited with code %d", e.Code)
}

// until is how long until t, in whole seconds (at least 0).
func until(t time.Time) time.Duration {
	return max(0, time.Until(t).Round(time.Second))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
