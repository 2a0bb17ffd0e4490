package main

import (
	"bufio"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"allium/internal/procstatus"

	"allium/api"
	"allium/hiddenservice"
	"allium/internal/safe"
	"allium/rootfs"
)

// torStopGrace bounds the wait for tor at shutdown: the supervisor
// sends SIGTERM and, 10 s later, SIGKILL.
const torStopGrace = 25 * time.Second

// onion is PID 1's tor: the supervised process and the loopback
// listener it forwards the onion's connections to, served with the
// same TLS pinning as the TCP port.
type onion struct {
	proc   *hiddenservice.Process
	addr   string // ID.onion:PORT
	ln     net.Listener
	cancel context.CancelFunc
	done   chan struct{}
}

// torState is the node's tor, guarded by mu: a running onion, or the
// reason there is none.
type torState struct {
	mu      sync.Mutex
	run     *onion
	missing string // why there is no tor at all ("" when there is one or it is off)
	logw    *os.File
	said    string // tor's last [warn] or [err] line, for a tor that keeps exiting
}

// startTor starts tor and publishes the onion service (boot step 8).
// Without a tor binary, an onion key or a client with an x25519 key it
// says why, in the log and in `cloud info`, and the node keeps serving
// on its other listeners. It is called again when the authorized keys
// change, so the first client key added at run time publishes the
// onion.
func (n *node) startTor() {
	if n.cfg.Tor.Off {
		n.log.Info("tor: off in node.json; the API is on TCP and the unix socket only")
		return
	}
	n.tor.mu.Lock()
	defer n.tor.mu.Unlock()
	if n.tor.run != nil || n.api == nil {
		return
	}
	exe := filepath.Join(n.root, n.cfg.TorExe())
	if _, err := os.Stat(exe); err != nil {
		n.torMissing(fmt.Sprintf("no tor binary at %s (%v): build the image with tor in it (mkimage bundles the build host's), or set tor.exe in node.json", n.cfg.TorExe(), errors.Unwrap(err)))
		return
	}
	key, err := readOnionKey(filepath.Join(n.root, rootfs.OnionKeyFile))
	if err != nil {
		n.torMissing(fmt.Sprintf("no onion service: %v", err))
		return
	}
	clients := n.onionClients()
	if len(clients) == 0 {
		n.torMissing("no onion service: no authorized client has an x25519 key yet (add one with `cloud keys HOST add`)")
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		n.torMissing(fmt.Sprintf("no onion service: the loopback listener for it: %v", err))
		return
	}
	port := n.cfg.OnionPort()
	svc, err := hiddenservice.NewService(hiddenservice.Onion{Key: key, Clients: clients, Port: port, Target: ln.Addr().String(),
		MaxStreams: n.onionStreams()})
	if err != nil {
		ln.Close()
		n.torMissing(fmt.Sprintf("no onion service: %v", err))
		return
	}
	svc.Log = n.log.With("part", "onion")
	proc, err := n.torProcess(exe, svc)
	if err != nil {
		ln.Close()
		n.torMissing(fmt.Sprintf("tor: %v", err))
		return
	}
	o := n.runOnion(proc, svc, ln)
	n.log.Info("tor: starting; the API will be at the onion once it is published", "onion", o.addr, "target", ln.Addr().String(), "clients", len(clients))
}

// torProcess is the node's tor, started through the reaper and
// publishing svc.
func (n *node) torProcess(exe string, svc *hiddenservice.Service) (*hiddenservice.Process, error) {
	return hiddenservice.NewProcess(hiddenservice.Options{
		Config: hiddenservice.Config{
			DataDir:       filepath.Join(n.root, rootfs.TorDataDir),
			ControlSocket: filepath.Join(n.root, hiddenservice.DefaultControlSocket),
			User:          torUser(n.cfg, userExists),
			Extra:         n.cfg.Tor.Torrc,
		},
		Exe:     exe,
		Starter: n.reaper,
		Service: svc,
		Stdout:  n.torLog(),
		Log:     n.log.With("part", "tor"),
	})
}

// runOnion serves the API on ln, the onion's target, and runs tor until
// the onion is stopped. n.tor.mu is held.
func (n *node) runOnion(proc *hiddenservice.Process, svc *hiddenservice.Service, ln net.Listener) *onion {
	n.openDataRootFor("tor")
	ctx, cancel := context.WithCancel(context.Background())
	port := n.cfg.OnionPort()
	o := &onion{proc: proc, addr: net.JoinHostPort(svc.Address(), strconv.Itoa(port)), ln: ln, cancel: cancel, done: make(chan struct{})}
	n.tor.run, n.tor.missing = o, ""
	srv := n.api
	safe.Go(n.log, "api onion", func() {
		if err := srv.ServeOnion(ln); err != nil && ctx.Err() == nil {
			n.log.Error("api: onion listener stopped", "err", err)
		}
	})
	safe.Go(n.log, "tor", func() {
		defer close(o.done)
		proc.Run(ctx)
	})
	return o
}

// openDataRootFor lets unprivileged users pass through the data root
// (mode 0711: through, not list), as tor must to reach its DataDirectory
// below it after it switches to its own user. Everything in the data
// root keeps its own, private, mode.
func (n *node) openDataRootFor(who string) {
	dir := filepath.Join(n.root, rootfs.DataDir)
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm()&0o011 == 0o011 {
		return
	}
	if err := os.Chmod(dir, fi.Mode().Perm()|0o011); err != nil {
		n.log.Error("data: cannot let "+who+" through the data root", "dir", dir, "err", err)
	}
}

// torUser picks the user tor runs as: node.json's tor.user; else the
// appliance's allium-tor; else, in an OS container whose own tor package
// made one, debian-tor; else allium-tor, and tor's supervisor says that
// the user is missing.
func torUser(cfg rootfs.NodeConfig, exists func(string) bool) string {
	if cfg.Tor.User != "" {
		return cfg.Tor.User
	}
	for _, u := range []string{rootfs.TorUser, "debian-tor"} {
		if exists(u) {
			return u
		}
	}
	return rootfs.TorUser
}

func userExists(name string) bool {
	_, err := user.Lookup(name)
	return err == nil
}

// torMissing records why the node has no onion service.
func (n *node) torMissing(why string) {
	if n.tor.missing != why {
		n.log.Error("tor: " + why)
	}
	n.tor.missing = why
}

// torLog is the pipe tor's stdout and stderr go to; its lines are
// logged (to the console in a VM). One pipe serves every tor started.
func (n *node) torLog() *os.File {
	if n.tor.logw != nil {
		return n.tor.logw
	}
	r, w, err := os.Pipe()
	if err != nil {
		n.log.Error("tor: no pipe for its log; discarding it", "err", err)
		return nil
	}
	n.tor.logw = w
	log := n.log.With("part", "tor")
	safe.Go(n.log, "tor log", func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := sc.Text()
			log.Info(line)
			if _, msg, ok := strings.Cut(line, "[err] "); ok && !strings.HasPrefix(msg, "Reading config failed") {
				n.torSaid(msg)
			} else if _, msg, ok := strings.Cut(line, "[warn] "); ok {
				n.torSaid(msg)
			}
		}
	})
	return w
}

func (n *node) torSaid(msg string) {
	n.tor.mu.Lock()
	n.tor.said = msg
	n.tor.mu.Unlock()
}

// readOnionKey reads the baked onion service key.
func readOnionKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no onion key at %s: mkimage bakes one", path)
	}
	if err != nil {
		return nil, err
	}
	k, err := hiddenservice.ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("onion key %s: %w", path, err)
	}
	return k, nil
}

// onionClients are the x25519 keys of the authorized clients that have
// one.
func (n *node) onionClients() []*ecdh.PublicKey {
	if n.db == nil {
		return nil
	}
	keys, err := n.db.Keys()
	if err != nil {
		n.log.Error("keys: reading", "err", err)
		return nil
	}
	var out []*ecdh.PublicKey
	for _, k := range keys {
		if k.Onion == nil {
			continue
		}
		pub, err := ecdh.X25519().NewPublicKey(k.Onion)
		if err != nil {
			n.log.Error("keys: a stored x25519 key is not valid; skipping it", "name", k.Name, "err", err)
			continue
		}
		out = append(out, pub)
	}
	return out
}

// keysChanged is called after the authorized keys in state.db change:
// the onion service republishes with the new client list, so a removed
// client loses the onion at the same time as its TLS key stops working.
func (n *node) keysChanged() {
	n.tor.mu.Lock()
	o := n.tor.run
	n.tor.mu.Unlock()
	if o == nil {
		n.startTor() // perhaps the first client with an x25519 key
		return
	}
	clients := n.onionClients()
	if len(clients) == 0 {
		// tor refuses an onion without client authorization; the
		// last onion client is gone, so the onion must go too.
		n.log.Warn("tor: no authorized client has an x25519 key any more; taking the onion down")
		n.stopTor()
		n.tor.mu.Lock()
		n.torMissing("no onion service: no authorized client has an x25519 key (add one with `cloud keys HOST add`)")
		n.tor.mu.Unlock()
		return
	}
	if err := o.proc.UpdateClients(clients); err != nil {
		n.log.Error("tor: updating the onion's clients", "err", err)
	}
}

// stopTor stops tor and the onion listener, and waits for tor to exit.
func (n *node) stopTor() {
	n.tor.mu.Lock()
	o := n.tor.run
	n.tor.run = nil
	n.tor.mu.Unlock()
	if o == nil {
		return
	}
	n.log.Info("tor: stopping")
	o.cancel()
	o.ln.Close()
	select {
	case <-o.done:
	case <-time.After(torStopGrace):
		n.log.Error("tor: still not stopped; going on")
	}
}

// torStatus is the tor part of GET /v1/node: nil when tor is off.
func (n *node) torStatus() *api.Tor {
	n.tor.mu.Lock()
	o, missing, said := n.tor.run, n.tor.missing, n.tor.said
	n.tor.mu.Unlock()
	if o == nil {
		if missing == "" {
			return nil
		}
		return &api.Tor{State: "missing", LastError: missing}
	}
	s := o.proc.Status()
	t := &api.Tor{
		State: string(s.State), Since: s.Since, Onion: o.addr,
		Published: s.Published, PublishedAt: s.PublishedAt,
		Bootstrap: s.Bootstrap, BootstrapSummary: s.BootstrapSummary,
		PID: s.PID, Restarts: max(s.Starts-1, 0), NextStart: s.NextStart,
		LastExit: s.LastExit, LastError: s.LastError, ClockSkew: s.ClockSkew,
	}
	if t.LastError == "" && (s.State == hiddenservice.StateBackoff || s.State == hiddenservice.StateCrashLoop) && said != "" {
		t.LastError = "tor said: " + said
	}
	if s.PID > 0 {
		t.RSS = procstatus.Bytes(readFile(filepath.Join(n.root, "proc", strconv.Itoa(s.PID), "status")))["VmRSS"]
	}
	return t
}
