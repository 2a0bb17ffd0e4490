package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"allium/api"
	"allium/internal/safe"
	"allium/rootfs"
)

// serveAPI starts the API on the unix socket and, unless switched off,
// on TCP. A listener that fails is retried in the background: the node
// keeps serving on whatever else it has.
func (n *node) serveAPI() { n.serveAPIOn(nil) }

// serveAPIOn is serveAPI on the listeners handed over by a previous
// init (by network: "unix", "tcp"), still listening; what is not among
// them is bound afresh.
func (n *node) serveAPIOn(handed map[string]net.Listener) {
	key, err := api.ReadPrivateKey(filepath.Join(n.root, rootfs.NodeKeyFile))
	if err != nil {
		n.log.Error("api: no node key; making a temporary one (clients that pin the baked key will refuse it)", "err", err)
		n.warn(fmt.Sprintf("node key: %v; using a temporary key", err))
		key, _ = api.NewKey()
	}
	srv, err := api.NewServer(n, key, n.log)
	if err != nil {
		n.log.Error("api: cannot start", "err", err)
		for _, ln := range handed {
			ln.Close()
		}
		return
	}
	srv.TCP, srv.Onion = n.apiLimits()
	n.api = srv
	n.log.Info("api: node key", "fingerprint", api.Fingerprint(key.Public().(ed25519.PublicKey)))
	sock := filepath.Join(n.root, rootfs.Socket)
	if ln := handed["unix"]; ln != nil {
		safe.Go(n.log, "api unix", func() { n.listenOn(context.Background(), "unix", sock, ln, srv.ServeUnix) })
	} else {
		safe.Go(n.log, "api unix", func() { n.listen(context.Background(), "unix", sock, srv.ServeUnix) })
	}
	on := n.cfg.ListenPort() != 0
	if n.db != nil {
		if choice, set, err := n.db.TCP(); err == nil && set {
			on = choice
			n.log.Info("api: TCP listener switched at run time", "on", on)
		}
	}
	n.switchTCPOn(on, handed["tcp"])
}

// servedListener is a listener the API is being served on.
type servedListener struct {
	ln   net.Listener
	addr string
}

// serving records (or, with ln nil, forgets) the listener of network.
func (n *node) serving(network, addr string, ln net.Listener) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.listening == nil {
		n.listening = map[string]servedListener{}
	}
	if ln == nil {
		delete(n.listening, network)
		return
	}
	n.listening[network] = servedListener{ln: ln, addr: addr}
}

// tcpSwitch is the TCP listener, which the operator can switch off and
// on at run time (PUT /v1/node/tcp).
type tcpSwitch struct {
	mu   sync.Mutex
	stop context.CancelFunc // nil when off
	addr string
}

// tcpPort is the port the TCP listener uses when on: node.json's, or
// the default when node.json switched it off.
func (n *node) tcpPort() int {
	if p := n.cfg.ListenPort(); p != 0 {
		return p
	}
	return rootfs.DefaultPort
}

// switchTCP starts or stops the TCP listener.
func (n *node) switchTCP(on bool) { n.switchTCPOn(on, nil) }

// switchTCPOn starts or stops the TCP listener; when it starts it, it
// serves ln, if not nil, a listener handed over. An unused ln is closed.
func (n *node) switchTCPOn(on bool, ln net.Listener) {
	t := &n.tcp
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case on && t.stop == nil && n.api != nil:
		ctx, cancel := context.WithCancel(context.Background())
		t.stop, t.addr = cancel, fmt.Sprintf(":%d", n.tcpPort())
		addr, srv := t.addr, n.api
		if ln != nil {
			safe.Go(n.log, "api tcp", func() { n.listenOn(ctx, "tcp", addr, ln, srv.ServeTLS) })
			return
		}
		safe.Go(n.log, "api tcp", func() { n.listen(ctx, "tcp", addr, srv.ServeTLS) })
	case !on && t.stop != nil:
		t.stop()
		t.stop, t.addr = nil, ""
		n.log.Info("api: TCP listener off; the API is on the onion and the unix socket")
	}
	if ln != nil { // not served: TCP is off, or on already
		ln.Close()
	}
}

// dropTCP forgets the TCP listener without closing it (a handover: its
// socket goes on in the next init, or in this one again).
func (n *node) dropTCP() {
	t := &n.tcp
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stop, t.addr = nil, ""
}

// tcpAddr is the TCP listener's address, or "off".
func (n *node) tcpAddr() string {
	n.tcp.mu.Lock()
	defer n.tcp.mu.Unlock()
	if n.tcp.stop == nil {
		return "off"
	}
	return n.tcp.addr
}

// SetTCP switches the TCP listener and records the choice, which holds
// across reboots until the next one.
func (n *node) SetTCP(on bool) error {
	if n.db == nil {
		return errors.New("no state database: the choice could not be kept")
	}
	if err := n.db.SetTCP(on); err != nil {
		return fmt.Errorf("recording the choice: %w", err)
	}
	n.switchTCP(on)
	return nil
}

// listen binds addr and serves on it, retrying while it cannot bind,
// until ctx is done.
func (n *node) listen(ctx context.Context, network, addr string, serve func(net.Listener) error) {
	for attempt := 0; ctx.Err() == nil; attempt++ {
		ln, err := bind(network, addr)
		if err != nil {
			if attempt == 0 {
				n.log.Error("api: cannot listen; retrying", "network", network, "addr", addr, "err", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Second):
			}
			continue
		}
		if !n.serveOn(ctx, network, addr, ln, serve) {
			return // shut down, or switched off
		}
		time.Sleep(time.Second)
	}
}

// listenOn serves ln, a listener handed over, and binds addr again if
// it fails.
func (n *node) listenOn(ctx context.Context, network, addr string, ln net.Listener, serve func(net.Listener) error) {
	if n.serveOn(ctx, network, addr, ln, serve) {
		n.listen(ctx, network, addr, serve)
	}
}

// serveOn serves ln until ctx is done or the API shuts down, and
// reports whether it failed otherwise (to be bound again).
func (n *node) serveOn(ctx context.Context, network, addr string, ln net.Listener, serve func(net.Listener) error) (failed bool) {
	n.log.Info("api: listening", "network", network, "addr", addr)
	n.serving(network, addr, ln)
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	err := serve(ln)
	stop()
	n.serving(network, addr, nil)
	if err != nil && ctx.Err() == nil {
		n.log.Error("api: listener stopped", "addr", addr, "err", err)
		return true
	}
	return false
}

func bind(network, addr string) (net.Listener, error) {
	if network != "unix" {
		return net.Listen(network, addr)
	}
	os.Remove(addr) // a socket left by a previous boot of this root
	if err := os.MkdirAll(filepath.Dir(addr), 0o755); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", addr)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(addr, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
