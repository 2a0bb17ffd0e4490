package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"allium/api"
)

// streamFlags are the flags of logs and events.
type streamFlags struct {
	nodeKey string
	follow  bool
	tail    int
}

func newLogs(g *globals) *cobra.Command {
	var f streamFlags
	cmd := &cobra.Command{
		Use:   "logs [-f] [--tail N] HOST NAME|FILE",
		Short: "Show a container's output",
		Long: `Show what a container wrote on stdout and stderr, one line each as
"TIME STREAM LINE" with the node's RFC 3339 timestamps. The node keeps
bounded, rotated log files, so the oldest lines go first.

With -f, keep showing new lines until interrupted (--timeout does not
apply to a followed log).

` + nameOrFile,
		Example: `  cloud logs web1 foo
  cloud logs --tail 50 web1 foo
  cloud logs -f --tail 0 web1 foo     # only what comes next`,
		Args:              hostAnd("NAME (or the FILE it was started from)"),
		ValidArgsFunction: g.completeHost,
		RunE: g.runLongE(func(ctx context.Context, args []string) error {
			return g.logs(ctx, args[0], args[1], f)
		}),
	}
	nodeKeyFlag(cmd, &f.nodeKey)
	cmd.Flags().BoolVarP(&f.follow, "follow", "f", false, "keep showing new lines")
	cmd.Flags().IntVar(&f.tail, "tail", -1, "show only the last `N` lines first")
	cmd.Flags().Lookup("tail").DefValue = "all" // -1 in words
	return cmd
}

func (g *globals) logs(ctx context.Context, host, arg string, f streamFlags) error {
	name, err := containerArg(arg)
	if err != nil {
		return err
	}
	if f.tail < -1 {
		return usagef("--tail %d: want a number of lines (0 or more)", f.tail)
	}
	s, err := g.connect(host, f.nodeKey)
	if err != nil {
		return err
	}
	if !f.follow {
		var cancel context.CancelFunc
		ctx, cancel = s.bounded(ctx)
		defer cancel()
	}
	err = s.client.Logs(ctx, name, api.LogOptions{Tail: f.tail, Follow: f.follow}, func(line string) error {
		_, err := fmt.Fprintln(g.stdout, line)
		return err
	})
	return s.endStream(ctx, err)
}

// endStream explains how a stream ended; an interrupted follow (ctx
// cancelled, by a signal) is not a failure.
func (s *session) endStream(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == context.Canceled {
		return nil
	}
	return s.explain(err)
}

func newEvents(g *globals) *cobra.Command {
	var f streamFlags
	cmd := &cobra.Command{
		Use:   "events HOST",
		Short: "Show what happened to a node's containers and images",
		Long: `Show the events the node recorded: containers starting, exiting (with
their status), restarts scheduled, crashloops, stops and removals, and
images arriving. With -f, keep showing new ones until interrupted.
With --json, print one JSON event per line.`,
		Example: `  cloud events web1
  cloud events web1 -f
  cloud events web1 -f --json | jq .`,
		Args:              hostArg,
		ValidArgsFunction: g.completeHost,
		RunE: g.runLongE(func(ctx context.Context, args []string) error {
			return g.events(ctx, args[0], f)
		}),
	}
	nodeKeyFlag(cmd, &f.nodeKey)
	cmd.Flags().BoolVarP(&f.follow, "follow", "f", false, "keep showing new events")
	return cmd
}

func (g *globals) events(ctx context.Context, host string, f streamFlags) error {
	s, err := g.connect(host, f.nodeKey)
	if err != nil {
		return err
	}
	if !f.follow {
		var cancel context.CancelFunc
		ctx, cancel = s.bounded(ctx)
		defer cancel()
	}
	err = s.client.Events(ctx, f.follow, func(e api.Event) error {
		if g.json {
			b, err := json.Marshal(e)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(g.stdout, "%s\n", b)
			return err
		}
		_, err := fmt.Fprintln(g.stdout, eventLine(e))
		return err
	})
	return s.endStream(ctx, err)
}

// eventLine is an event in one line: time, type, what it happened to,
// and what happened.
func eventLine(e api.Event) string {
	subject := e.Container
	if subject == "" {
		subject = shortDigest(e.Image)
	}
	what := []string{e.Time.Format(time.RFC3339), fmt.Sprintf("%-17s", e.Type), orDash(subject)}
	if e.Message != "" {
		what = append(what, e.Message)
	}
	if e.Exit != nil {
		what = append(what, "("+exitText(e.Exit)+")")
	}
	return strings.Join(what, "  ")
}
