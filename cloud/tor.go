package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"allium/api"
	"allium/hiddenservice"
)

// torDefaults are where cloud looks for a running tor when --tor-socks
// and --tor-control do not say, and for a tor program to start. A
// variable, so tests can point it elsewhere.
var torDefaults = struct {
	socks    string
	controls []string
	exes     []string
}{
	socks:    "127.0.0.1:9050",
	controls: []string{"127.0.0.1:9051", "/run/tor/control"},
	// /usr/sbin is not in a Debian user's PATH.
	exes: []string{"tor", "/usr/sbin/tor", "/usr/local/sbin/tor", "/usr/local/bin/tor"},
}

const torHelp = `Onions: a node whose alias has only an onion, or HOST given as
ID.onion[:PORT] (port 7707 by default), is reached through tor: the
running tor at --tor-socks (default 127.0.0.1:9050 when something
listens there), or else a tor that cloud starts for the command and
stops after it, with its data in DIR/tor. cloud hands tor this client's
x25519 key (DIR/client.onion, made on first use) through tor's control
port (--tor-control, default 127.0.0.1:9051 or /run/tor/control) without
storing it in that tor, or writes it into its own tor's
ClientOnionAuthDir. --torrc FILE adds lines (such as bridges) to cloud's
own tor's configuration. Through tor, --timeout defaults to 90s.`

// torFlags adds the global flags that say how to reach onions.
func (g *globals) torFlags(root *cobra.Command) {
	f := root.PersistentFlags()
	f.StringVar(&g.via, "via", viaAuto, "how to reach an alias's node: `auto` (its address, else its onion), tcp or onion")
	f.StringVar(&g.torSocks, "tor-socks", "", "a running tor's SOCKS port, `HOST:PORT` (default 127.0.0.1:9050 when one listens; else cloud starts its own tor)")
	f.StringVar(&g.torControl, "tor-control", "", "that tor's control port, `ADDR`: HOST:PORT or a unix socket path (default 127.0.0.1:9051 or /run/tor/control)")
	f.StringVar(&g.torrc, "torrc", "", "extra torrc lines for cloud's own tor, from `FILE` (bridges, for example)")
}

// checkTorFlags checks the onion flags together.
func (g *globals) checkTorFlags() error {
	if err := checkVia(g.via); err != nil {
		return err
	}
	if g.torrc != "" && g.torSocks != "" {
		return usagef("--torrc configures the tor cloud starts itself; it cannot go with --tor-socks %s (a running tor)", g.torSocks)
	}
	if g.torSocks != "" {
		if _, _, err := net.SplitHostPort(g.torSocks); err != nil {
			return usagef("--tor-socks %q: want HOST:PORT, such as 127.0.0.1:9050", g.torSocks)
		}
	}
	return nil
}

// prepareOnion gets tor ready before a command whose HOST (its first
// argument, in every command that takes arguments) is an onion, so
// that tor's start is not counted in --timeout; and it makes
// --timeout's default longer through tor. A HOST that does not resolve
// is left for connect to explain.
func (g *globals) prepareOnion(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	cfg, err := g.configDir()
	if err != nil {
		return nil
	}
	addr, ok := onionTarget(cfg, args[0], g.via)
	if !ok {
		return nil
	}
	if f := cmd.Flag("timeout"); f != nil && !f.Changed {
		g.timeout = onionTimeout
	} else if f != nil {
		g.bootLimit = g.timeout // an explicit --timeout bounds tor's start too
	}
	_, err = g.onionLink(cmd.Context(), cfg, addr)
	return err
}

// onionTarget is the onion HOST leads to, if it leads to one.
func onionTarget(cfg api.Config, host, via string) (string, bool) {
	if addr, ok, err := onionHost(host); ok {
		return addr, err == nil
	}
	if isAddress(host) {
		return "", false
	}
	a, err := cfg.Alias(host)
	if err != nil {
		return "", false
	}
	addr, err := pickAddress(a, via)
	return addr, err == nil && hiddenservice.IsOnion(hostOf(addr))
}

// onionLink finds or starts a tor for the onion at addr, and hands it
// this client's key.
func (g *globals) onionLink(ctx context.Context, cfg api.Config, addr string) (*onionLink, error) {
	onion := hostOf(addr)
	if g.link != nil && g.link.onion == onion {
		return g.link, nil
	}
	key, created, err := hiddenservice.LoadOrCreateClientKeyFile(cfg.OnionKeyPath())
	if err != nil {
		return nil, fmt.Errorf("this client's x25519 key for onions: %w", err)
	}
	if created {
		fmt.Fprintf(g.stderr, "made this client's x25519 key for onions, %s (public: %s): "+
			"a node's onion lets in only the keys it lists\n", cfg.OnionKeyPath(), hiddenservice.FormatClientPublicKey(key.PublicKey()))
	}
	l := &onionLink{onion: onion, key: key, keyPath: cfg.OnionKeyPath(), stderr: g.stderr}
	if err := g.findTor(ctx, cfg, l); err != nil {
		return nil, err
	}
	g.closers = append(g.closers, l.close)
	g.link = l
	if err := l.addKey(ctx); err != nil {
		l.keyNotGiven = err.Error()
		fmt.Fprintf(g.stderr, "tor: %v\n", err)
	}
	return l, nil
}

// findTor sets l's tor: a running one, or else cloud's own.
func (g *globals) findTor(ctx context.Context, cfg api.Config, l *onionLink) error {
	if g.torrc != "" || (g.torSocks == "" && !listening(ctx, torDefaults.socks)) {
		own, err := startOwnTor(ctx, ownTorConfig{dir: cfg.Dir, torrc: g.torrc, onion: l.onion, key: l.key, stderr: g.stderr, limit: g.bootLimit})
		if err != nil {
			return err
		}
		l.own, l.socks, l.ctl = own, own.socks, own.ctl
		return nil
	}
	l.socks = g.torSocks
	if l.socks == "" {
		l.socks = torDefaults.socks
	}
	ctl, why, err := g.control(ctx)
	if err != nil {
		return err
	}
	l.ctl, l.keyNotGiven = ctl, why
	if ctl == nil {
		fmt.Fprintf(g.stderr, "tor: %s; so cloud cannot hand tor this client's key, and an onion with client authorization "+
			"refuses it unless this tor has it already\n", why)
	}
	return nil
}

// control connects to the running tor's control port: --tor-control,
// or the first default that answers. Without --tor-control, having
// none is no error: why says what was tried.
func (g *globals) control(ctx context.Context) (ctl *hiddenservice.Controller, why string, err error) {
	if g.torControl != "" {
		c, err := dialControl(ctx, g.torControl)
		if err != nil {
			return nil, "", fmt.Errorf("--tor-control %s: %w", g.torControl, err)
		}
		return c, "", nil
	}
	var whys []string
	for _, a := range torDefaults.controls {
		c, err := dialControl(ctx, a)
		if err == nil {
			return c, "", nil
		}
		if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, fs.ErrNotExist) {
			whys = append(whys, err.Error())
		}
	}
	if len(whys) == 0 {
		return nil, fmt.Sprintf("no tor control port at %s (give one with --tor-control ADDR)",
			strings.Join(torDefaults.controls, " or ")), nil
	}
	return nil, strings.Join(whys, "; "), nil
}

// dialControl connects and authenticates to a tor control port at
// HOST:PORT or a unix socket path (also spelled unix:PATH).
func dialControl(ctx context.Context, addr string) (*hiddenservice.Controller, error) {
	network, a := "tcp", addr
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, a = "unix", p
	} else if strings.Contains(addr, "/") {
		network = "unix"
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := hiddenservice.Dial(ctx, network, a)
	if err == nil {
		return c, nil
	}
	if errors.Is(err, fs.ErrPermission) || strings.Contains(err.Error(), "permission denied") {
		return nil, fmt.Errorf("tor's control port %s: %w\ncloud authenticates with tor's cookie, so it must be able to "+
			"open the socket and read the cookie file; on Debian, join the debian-tor group "+
			"(sudo adduser $USER debian-tor, then log in again)", addr, err)
	}
	return nil, fmt.Errorf("tor's control port %s: %w", addr, err)
}

// listening reports whether something accepts connections at addr.
func listening(ctx context.Context, addr string) bool {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// closeTor stops what the command started for onions.
func (g *globals) closeTor() {
	for _, c := range g.closers {
		c()
	}
	g.closers, g.link = nil, nil
}
