package main

import (
	"crypto/ed25519"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"allium/api"
	"allium/internal/safe"
	"allium/rootfs"
)

// serveAPI starts the API on the unix socket and, unless switched off,
// on TCP. A listener that fails is retried in the background: the node
// keeps serving on whatever else it has.
func (n *node) serveAPI() {
	key, err := api.ReadPrivateKey(filepath.Join(n.root, rootfs.NodeKeyFile))
	if err != nil {
		n.log.Error("api: no node key; making a temporary one (clients that pin the baked key will refuse it)", "err", err)
		n.warn(fmt.Sprintf("node key: %v; using a temporary key", err))
		key, _ = api.NewKey()
	}
	srv, err := api.NewServer(n, key, n.log)
	if err != nil {
		n.log.Error("api: cannot start", "err", err)
		return
	}
	n.api = srv
	n.log.Info("api: node key", "fingerprint", api.Fingerprint(key.Public().(ed25519.PublicKey)))
	sock := filepath.Join(n.root, rootfs.Socket)
	safe.Go(n.log, "api unix", func() { n.listen("unix", sock, srv.ServeUnix) })
	if port := n.cfg.ListenPort(); port != 0 {
		addr := fmt.Sprintf(":%d", port)
		safe.Go(n.log, "api tcp", func() { n.listen("tcp", addr, srv.ServeTLS) })
	}
}

// listen binds addr and serves on it, retrying while it cannot bind.
func (n *node) listen(network, addr string, serve func(net.Listener) error) {
	for attempt := 0; ; attempt++ {
		ln, err := bind(network, addr)
		if err != nil {
			if attempt == 0 {
				n.log.Error("api: cannot listen; retrying", "network", network, "addr", addr, "err", err)
			}
			time.Sleep(2 * time.Second)
			continue
		}
		n.log.Info("api: listening", "network", network, "addr", addr)
		if err := serve(ln); err != nil {
			n.log.Error("api: listener stopped", "addr", addr, "err", err)
			time.Sleep(time.Second)
			continue
		}
		return // shut down
	}
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
