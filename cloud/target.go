package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"allium/api"
	"allium/hiddenservice"
)

// target is the node a command talks to.
type target struct {
	name    string // the alias, or ADDRESS:PORT as given
	addr    string // ADDRESS:PORT
	alias   bool   // name is an alias
	onion   bool   // addr is ID.onion:PORT, reached through tor
	nodeKey ed25519.PublicKey
	keyFrom string // what pinned nodeKey, for messages: "the alias web1" or "--node-key"
}

// String names the node in messages: "web1 (127.0.0.1:7707)", or just
// the address when that is all there is.
func (t target) String() string {
	if t.alias {
		return fmt.Sprintf("%s (%s)", t.name, t.addr)
	}
	return t.addr
}

// nodeKeyFlag adds --node-key to a command that takes a HOST.
func nodeKeyFlag(cmd *cobra.Command, v *string) {
	cmd.Flags().StringVar(v, "node-key", "",
		"the node's key, `ed25519:BASE64`; needed with ADDRESS:PORT, and wins over an alias's key")
}

// isAddress reports whether host is ADDRESS:PORT rather than an alias
// (alias names never hold a colon).
func isAddress(host string) bool {
	_, port, err := net.SplitHostPort(host)
	return err == nil && port != ""
}

// resolve turns HOST, --node-key and --via into a target.
func resolve(cfg api.Config, host, nodeKey string, via string) (target, error) {
	var flagKey ed25519.PublicKey
	if nodeKey != "" {
		k, err := api.ParseKey(nodeKey)
		if err != nil {
			return target{}, usagef("--node-key: %w", err)
		}
		flagKey = k
	}
	t, err := lookup(cfg, host, flagKey, via)
	if err != nil {
		return target{}, err
	}
	t.onion = hiddenservice.IsOnion(hostOf(t.addr))
	if flagKey != nil {
		t.nodeKey, t.keyFrom = flagKey, "--node-key"
	}
	return t, nil
}

func lookup(cfg api.Config, host string, flagKey ed25519.PublicKey, via string) (target, error) {
	if addr, ok, err := onionHost(host); ok || err != nil {
		if err != nil {
			return target{}, err
		}
		if flagKey == nil {
			return target{}, usagef("%s is an onion address, so cloud needs the key the node must present: "+
				"add --node-key ed25519:BASE64 (mkimage prints it), or use the node's alias (see cloud nodes)", host)
		}
		if via == viaTCP {
			return target{}, usagef("%s is an onion address: it cannot be reached with --via tcp", host)
		}
		return target{name: addr, addr: addr}, nil
	}
	if isAddress(host) {
		if via == viaOnion {
			return target{}, usagef("%s is not an onion address: --via onion needs ID.onion[:PORT] or an alias with an onion", host)
		}
		if flagKey == nil {
			return target{}, usagef("%s is an address, so cloud needs the key the node must present: "+
				"add --node-key ed25519:BASE64 (mkimage prints it), or use the node's alias (see cloud nodes)", host)
		}
		return target{name: host, addr: host}, nil
	}
	a, err := cfg.Alias(host)
	if errors.Is(err, api.ErrNoAlias) {
		return target{}, noAlias(cfg, host)
	}
	if err != nil {
		return target{}, err
	}
	key, err := api.ParseKey(a.NodeKey) // Alias checked it already
	if err != nil {
		return target{}, err
	}
	addr, err := pickAddress(a, via)
	if err != nil {
		return target{}, err
	}
	return target{name: a.Name, addr: addr, alias: true, nodeKey: key, keyFrom: "the alias " + a.Name}, nil
}

// noAlias explains a HOST that is neither an alias nor ADDRESS:PORT.
func noAlias(cfg api.Config, host string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "no alias %q in %s", host, cfg.Dir)
	aliases, err := cfg.Aliases()
	switch {
	case err != nil:
		fmt.Fprintf(&b, " (listing the aliases: %v)", err)
	case len(aliases) == 0:
		b.WriteString("; there are no aliases yet (mkimage saves one for each appliance it builds)")
	default:
		names := make([]string, len(aliases))
		for i, a := range aliases {
			names[i] = a.Name
		}
		fmt.Fprintf(&b, "; known aliases: %s", strings.Join(names, ", "))
	}
	if net.ParseIP(host) != nil {
		fmt.Fprintf(&b, "\n%s looks like an address without its port: try %s", host, net.JoinHostPort(host, "7707"))
	}
	b.WriteString("\nTo reach a node by address, give ADDRESS:PORT and its key: --node-key ed25519:BASE64")
	return errors.New(b.String())
}

// session is a client connected (in intent) to one node.
type session struct {
	target
	client    *api.Client
	clientKey ed25519.PublicKey
	keyPath   string // where the client key came from
	timeout   time.Duration
	link      *onionLink // how an onion target is reached; nil for TCP
}

// connect resolves host and makes a client for it.
func (g *globals) connect(host, nodeKey string) (*session, error) {
	cfg, err := g.configDir()
	if err != nil {
		return nil, err
	}
	t, err := resolve(cfg, host, nodeKey, g.via)
	if err != nil {
		return nil, err
	}
	key, err := clientKey(cfg)
	if err != nil {
		return nil, err
	}
	s := &session{target: t, clientKey: key.Public().(ed25519.PublicKey), keyPath: cfg.KeyPath(), timeout: g.timeout}
	if !t.onion {
		s.client, err = api.NewClient(t.addr, key, t.nodeKey)
		return s, err
	}
	if s.link, err = g.onionLink(context.Background(), cfg, t.addr); err != nil {
		return nil, err
	}
	s.client, err = api.NewClientDialer(t.addr, key, t.nodeKey, s.link.DialContext)
	return s, err
}

func clientKey(cfg api.Config) (ed25519.PrivateKey, error) {
	key, err := cfg.ClientKey()
	if err == nil {
		return key, nil
	}
	if _, statErr := os.Stat(cfg.KeyPath()); errors.Is(statErr, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w; or point --config (or $ALLIUM_CONFIG) at the directory that has one", err)
	}
	return nil, err
}

// call sends method path and returns the node's JSON answer, or an
// error that explains itself.
//
// Through an onion, a read (GET) whose connection drops before the
// answer is sent again, up to twice: right after the node republishes
// its onion (a key added or removed, tor restarted) a client's first
// stream can land on a circuit the node's tor is closing.
func (s *session) call(ctx context.Context, method, path string) (json.RawMessage, error) {
	for try := 1; ; try++ {
		var raw json.RawMessage
		err := s.client.Do(ctx, method, path, nil, &raw)
		if err == nil {
			return raw, nil
		}
		if s.link == nil || method != http.MethodGet || try > 2 || !droppedConn(err) || ctx.Err() != nil {
			return nil, s.explain(err)
		}
		fmt.Fprintf(s.link.stderr, "tor: the connection to %s dropped (%v); trying again (%d of 2)\n", s.name, err, try)
		select {
		case <-ctx.Done():
			return nil, s.explain(err)
		case <-time.After(time.Second):
		}
	}
}

// droppedConn reports whether err is a connection that ended before an
// answer, rather than an answer or a refusal. net.ErrClosed is one too:
// the HTTP transport closes its side when it reads the peer's end while
// the request is still being written (seen under emulated arm64).
func droppedConn(err error) bool {
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// bounded limits one request to the node by --timeout.
func (s *session) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}
