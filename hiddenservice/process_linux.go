package hiddenservice

import (
	"crypto/ecdh"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"allium/internal/child"
	"allium/supervisor/restart"
)

// Options configure a Process. Start is required.
type Options struct {
	// Config is tor's configuration; the zero value is the appliance's.
	Config Config
	// Exe is the tor binary; empty means DefaultExe.
	Exe string
	// Starter starts tor and delivers its wait status: PID 1's reaper,
	// the one caller of wait4 (tests: testkit.Starter); required. tor's
	// stdio is nil or *os.File, so os/exec starts no copying goroutines
	// that only Wait would end.
	Starter child.Starter
	// Service is the onion to publish and republish after each start;
	// nil runs tor without one.
	Service *Service
	// Policy is tor's restart policy; each zero field takes
	// TorPolicy's value (not a container's default).
	Policy restart.Policy
	// Stdout receives tor's log (notice level); nil discards it.
	Stdout *os.File
	// Log receives the supervisor's own events; nil means none.
	Log *slog.Logger
}

// Process runs tor as a supervised child: Run starts it, connects to
// its control socket, publishes the Service, restarts tor with backoff
// whenever it dies and publishes again. Status reports on it.
type Process struct {
	opts    Options
	running atomic.Bool

	mu      sync.Mutex
	status  Status
	clients []*ecdh.PublicKey // a pending UpdateClients, or nil
}

// NewProcess checks opts and returns a Process that has not started.
func NewProcess(opts Options) (*Process, error) {
	if opts.Starter == nil {
		return nil, fmt.Errorf("hiddenservice: Options.Starter: %w", child.ErrNoStarter)
	}
	opts.Policy = torPolicy(opts.Policy)
	if _, err := opts.Config.Torrc(); err != nil {
		return nil, err
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	p := &Process{opts: opts}
	p.status = Status{State: StateStopped, Since: time.Now()}
	if opts.Service != nil {
		p.status.Onion = opts.Service.Address()
	}
	return p, nil
}

// Status is a snapshot of the supervisor's view of tor.
func (p *Process) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

func (p *Process) update(f func(*Status)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.status)
}

func (p *Process) setState(s State) {
	p.update(func(st *Status) {
		if st.State != s {
			st.State, st.Since = s, time.Now()
		}
	})
}

// UpdateClients replaces the authorized client keys. A running
// supervisor republishes within a second (see Service.Update for what
// clients see meanwhile); otherwise the next start uses them.
func (p *Process) UpdateClients(clients []*ecdh.PublicKey) error {
	if p.opts.Service == nil {
		return errors.New("hiddenservice: UpdateClients: this tor publishes no onion")
	}
	if len(clients) == 0 {
		return ErrNoClients
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clients = clients
	return nil
}

// takeClients returns a pending client list, once.
func (p *Process) takeClients() []*ecdh.PublicKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.clients
	p.clients = nil
	return c
}

func (p *Process) exe() string {
	if p.opts.Exe == "" {
		return DefaultExe
	}
	return p.opts.Exe
}

// Command is the tor command Run starts: a pure function of the
// options. tor gets its own session (no console signals), an
// environment with HOME only, and no defaults torrc, so nothing on the
// disk but the generated torrc configures it.
func (p *Process) Command() *exec.Cmd {
	cfg := p.opts.Config
	cmd := exec.Command(p.exe(), "-f", cfg.TorrcPath(), "--defaults-torrc", os.DevNull)
	cmd.Env = []string{"HOME=" + cfg.dataDir()}
	cmd.Dir = "/"
	cmd.Stdout = p.opts.Stdout
	cmd.Stderr = p.opts.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return cmd
}

// Prepare lays out tor's directories (0700; owned by Config.User when
// set) and writes the torrc. A stale control socket is removed, so that
// waiting for the socket means waiting for this tor.
func (p *Process) Prepare() error {
	cfg := p.opts.Config
	rc, err := cfg.Torrc()
	if err != nil {
		return err
	}
	uid, gid, err := lookupUser(cfg.User)
	if err != nil {
		return err
	}
	for _, d := range []string{cfg.dataDir(), cfg.RunDir()} {
		if err := privateDir(d, uid, gid); err != nil {
			return err
		}
	}
	if err := os.Remove(cfg.controlSocket()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("hiddenservice: %w", err)
	}
	if err := os.WriteFile(cfg.TorrcPath(), []byte(rc), 0o644); err != nil {
		return fmt.Errorf("hiddenservice: %w", err)
	}
	return nil
}

// lookupUser returns name's uid and gid, or -1, -1 for "" (keep the
// owner).
func lookupUser(name string) (uid, gid int, err error) {
	if name == "" {
		return -1, -1, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, fmt.Errorf("hiddenservice: tor user: %w (it must be in /etc/passwd)", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// privateDir makes dir with mode 0700 and, when uid >= 0, gives it and
// everything in it to uid:gid (tor refuses a DataDirectory its user
// does not own, and opens its control socket after switching user).
func privateDir(dir string, uid, gid int) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("hiddenservice: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("hiddenservice: %w", err)
	}
	if uid < 0 {
		return nil
	}
	return filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err == nil {
			err = os.Lchown(path, uid, gid)
		}
		if err != nil {
			return fmt.Errorf("hiddenservice: %w", err)
		}
		return nil
	})
}

// startError says in words why tor did not start.
func startError(exe string, err error) error {
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("hiddenservice: start tor: %w", err)
	}
	if _, statErr := os.Stat(exe); statErr == nil {
		return fmt.Errorf("%w: %s is there but will not run: its ELF interpreter or a library is missing (%v)", ErrNoTor, exe, err)
	}
	return fmt.Errorf("%w at %s: build the image with tor in it (%v)", ErrNoTor, exe, err)
}
