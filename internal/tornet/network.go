package tornet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options configure a Network. The zero value is the measured recipe.
type Options struct {
	// Dir holds every tor's DataDirectory. Empty means a new temporary
	// directory that Close removes. Keep it short: clients put their
	// control sockets there (108-byte limit).
	Dir string
	// Log receives progress; nil means none.
	Log *slog.Logger
	// KeyCache is where the authority's keys are kept between runs.
	// Empty means os.TempDir()/allium-tornet-keys; "-" means no cache.
	KeyCache string
	// Relays is the number of relays beside the authority; 0 means 3
	// (onion services need at least 4 nodes in all).
	Relays int
	// Tor and TorGencert are the binaries; empty means $PATH, then
	// /usr/sbin and /usr/bin.
	Tor, TorGencert string
	// Timeout bounds the wait for a consensus listing every relay; 0
	// means 90 s.
	Timeout time.Duration
	// DebugLog, if true, gives every tor of the network (clients too) a
	// second log, info level, in DATADIR/info.log: tens of MB a minute,
	// for post-mortems with a kept Dir.
	DebugLog bool
}

// Network is a private Tor network on 127.0.0.1: one directory
// authority and a few relays, all of them HSDirs and guards, none of
// them exits.
type Network struct {
	opts      Options
	log       *slog.Logger
	dir       string
	removeDir bool
	auth      *node
	relays    []*node
	v3ident   string

	mu      sync.Mutex
	clients []*Client
	closed  bool
}

// Start builds the network and returns once the authority's consensus
// lists every relay with the flags onion services need (about 9 s with
// cached keys). Close it when done; its tors also die with this
// process (Pdeathsig, __OwningControllerProcess).
//
// Its ports are picked free, then handed to tor, which binds them a
// moment later: another test may take one between the two. A start that
// fails that way ("Address already in use") is tried again with new
// ports, twice at most.
func Start(ctx context.Context, opts Options) (*Network, error) {
	for try := 1; ; try++ {
		n, err := newNetwork(opts)
		if err != nil {
			return nil, err
		}
		err = n.start(ctx)
		if err == nil {
			return n, nil
		}
		n.Close()
		if try == 3 || !strings.Contains(err.Error(), "Address already in use") || ctx.Err() != nil {
			return nil, err
		}
		n.log.Warn("tornet: a port was taken before tor bound it; starting again", "err", err)
	}
}

func newNetwork(opts Options) (*Network, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	n := &Network{opts: opts, log: opts.Log, dir: opts.Dir}
	if n.dir == "" {
		d, err := os.MkdirTemp("", "tornet")
		if err != nil {
			return nil, fmt.Errorf("tornet: %w", err)
		}
		n.dir, n.removeDir = d, true
	}
	return n, nil
}

func (o *Options) defaults() error {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	switch o.KeyCache {
	case "":
		o.KeyCache = filepath.Join(os.TempDir(), "allium-tornet-keys")
	case "-":
		o.KeyCache = ""
	}
	o.Relays = max(o.Relays, 0)
	if o.Relays == 0 {
		o.Relays = 3
	}
	if o.Timeout == 0 {
		o.Timeout = 90 * time.Second
	}
	var err error
	if o.Tor, err = findBinary(o.Tor, "tor"); err != nil {
		return err
	}
	o.TorGencert, err = findBinary(o.TorGencert, "tor-gencert")
	return err
}

// ErrNoTor means the tor binaries are not installed.
var ErrNoTor = errors.New("tornet: tor is not installed (apt-get install tor)")

func findBinary(path, name string) (string, error) {
	if path != "" {
		return path, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin"} {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return filepath.Join(d, name), nil
		}
	}
	return "", fmt.Errorf("%w: no %s", ErrNoTor, name)
}

func (n *Network) start(ctx context.Context) error {
	t0 := time.Now()
	if err := n.layout(); err != nil {
		return err
	}
	if err := n.keys(ctx); err != nil {
		return err
	}
	n.log.Info("keys ready", "after", time.Since(t0).Round(time.Millisecond))
	now := time.Now()
	for _, nd := range n.nodes() {
		if err := n.startNode(nd, now); err != nil {
			return err
		}
	}
	if err := n.waitConsensus(ctx); err != nil {
		return err
	}
	n.log.Info("network ready", "after", time.Since(t0).Round(time.Millisecond), "relays", len(n.relays))
	return nil
}

// layout picks ports and makes the DataDirectories.
func (n *Network) layout() error {
	mk := func(nick string) (*node, error) {
		nd := &node{nick: nick, dir: filepath.Join(n.dir, nick)}
		if err := os.MkdirAll(nd.dir, 0o700); err != nil {
			return nil, fmt.Errorf("tornet: %w", err)
		}
		var err error
		nd.orPort, err = FreePort()
		return nd, err
	}
	var err error
	if n.auth, err = mk("auth0"); err != nil {
		return err
	}
	if n.auth.dirPort, err = FreePort(); err != nil {
		return err
	}
	for i := range n.opts.Relays {
		nd, err := mk(fmt.Sprintf("relay%d", i+1))
		if err != nil {
			return err
		}
		n.relays = append(n.relays, nd)
	}
	return nil
}

func (n *Network) nodes() []*node { return append([]*node{n.auth}, n.relays...) }

// keys makes every node's identity keys, in parallel; the authority's
// v3 keys go into its keys directory after its relay keys.
func (n *Network) keys(ctx context.Context) error {
	errs := make(chan error, len(n.relays)+1)
	var wg sync.WaitGroup
	for _, nd := range n.relays {
		wg.Go(func() { errs <- n.fingerprint(ctx, nd) })
	}
	wg.Go(func() {
		err := n.fingerprint(ctx, n.auth)
		if err == nil {
			n.v3ident, err = n.authorityKeysTo(ctx, filepath.Join(n.auth.dir, "keys"))
		}
		errs <- err
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (n *Network) startNode(nd *node, now time.Time) error {
	rc := filepath.Join(nd.dir, "torrc")
	if err := os.WriteFile(rc, []byte(n.torrc(nd, now)), 0o600); err != nil {
		return fmt.Errorf("tornet: %w", err)
	}
	p, err := startProc(n.opts.Tor, nd.nick, nd.dir, rc)
	if err != nil {
		return err
	}
	nd.proc = p
	return nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("tornet: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Dir is the directory that holds the network's DataDirectories.
func (n *Network) Dir() string { return n.dir }

// PIDs are the process IDs of every tor of the network that runs,
// clients included.
func (n *Network) PIDs() []int {
	var pids []int
	for _, nd := range n.nodes() {
		if nd != nil && nd.proc != nil && nd.proc.running() {
			pids = append(pids, nd.proc.cmd.Process.Pid)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.clients {
		if c.proc.running() {
			pids = append(pids, c.proc.cmd.Process.Pid)
		}
	}
	return pids
}

// Close stops every tor of the network and its clients (SIGTERM, then
// SIGKILL after 5 s) and removes the directory if Start made it.
func (n *Network) Close() error {
	n.mu.Lock()
	clients := n.clients
	n.clients, n.closed = nil, true
	n.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(c.proc.stop)
	}
	for _, nd := range n.nodes() {
		if nd != nil && nd.proc != nil {
			wg.Go(nd.proc.stop)
		}
	}
	wg.Wait()
	if n.removeDir {
		return os.RemoveAll(n.dir)
	}
	return nil
}

// proc is a tor started by the network. Tests, not PID 1, run it, so
// exec.Cmd.Wait is fine here.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// startProc starts tor -f torrc, with its stdout and stderr in
// dir/stdout.log, killed if this process dies.
func startProc(exe, name, dir, torrc string) (*proc, error) {
	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		return nil, fmt.Errorf("tornet: %w", err)
	}
	cmd := exec.Command(exe, "-f", torrc, "--defaults-torrc", os.DevNull, "--hush")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("tornet: start %s: %w", name, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), log: out}
	go func() {
		cmd.Wait()
		out.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) stop() {
	if !p.running() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}
