package tornet

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// neededFlags are the flags every relay must have before clients and
// services start: without Stable and Guard on all of them, onion
// circuits reuse one node twice and fail until the next consensus.
var neededFlags = []string{"Running", "Valid", "Stable", "Fast", "Guard"}

// waitConsensus polls the authority's microdescriptor consensus until
// it lists every relay with neededFlags and at least one HSDir.
// Starting clients earlier makes them back off on 404s for 10-20 s.
func (n *Network) waitConsensus(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, n.opts.Timeout)
	defer cancel()
	path := filepath.Join(n.auth.dir, "cached-microdesc-consensus")
	var nicks []string
	for _, nd := range n.nodes() {
		nicks = append(nicks, nd.nick)
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	last := "no consensus yet"
	for {
		if b, err := os.ReadFile(path); err == nil {
			if last = missing(ParseConsensus(string(b)), nicks); last == "" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("tornet: waiting for a complete consensus: %w (%s)\n%s", ctx.Err(), last, n.logTails())
		case <-t.C:
		}
		if err := n.crashed(); err != nil {
			return err
		}
	}
}

// ParseConsensus maps each router's nickname to its flags, from the
// "r" and "s" lines of a (microdescriptor) consensus.
func ParseConsensus(doc string) map[string][]string {
	flags := map[string][]string{}
	var nick string
	sc := bufio.NewScanner(strings.NewReader(doc))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 2 && f[0] == "r":
			nick = f[1]
			flags[nick] = nil
		case len(f) >= 1 && f[0] == "s" && nick != "":
			flags[nick] = f[1:]
		}
	}
	return flags
}

// missing says what the consensus still lacks, or "" when nothing.
func missing(flags map[string][]string, nicks []string) string {
	hsdir := false
	for _, nick := range nicks {
		fl, ok := flags[nick]
		if !ok {
			return nick + " is not in the consensus"
		}
		for _, want := range neededFlags {
			if !slices.Contains(fl, want) {
				return nick + " lacks " + want
			}
		}
		hsdir = hsdir || slices.Contains(fl, "HSDir")
	}
	if !hsdir {
		return "no HSDir"
	}
	return ""
}

// crashed reports a node that has exited.
func (n *Network) crashed() error {
	for _, nd := range n.nodes() {
		if !nd.proc.running() {
			return fmt.Errorf("tornet: %s exited: %v\n%s", nd.nick, nd.proc.cmd.ProcessState, n.logTails())
		}
	}
	return nil
}

// logTails is the end of every node's notice log, for error messages.
func (n *Network) logTails() string {
	var b strings.Builder
	for _, nd := range n.nodes() {
		fmt.Fprintf(&b, "--- %s\n%s", nd.nick, tail(filepath.Join(nd.dir, "notice.log"), 8))
		fmt.Fprint(&b, tail(filepath.Join(nd.dir, "stdout.log"), 4))
	}
	return b.String()
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n") + "\n"
}
