package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cretz/bine/process"
	"github.com/cretz/bine/tor"
	"golang.org/x/sys/unix"

	"allium/hiddenservice"
)

// bootstrapLimit bounds tor's bootstrap. A first start on a real
// network takes seconds to a minute; later ones reuse DIR/tor.
const bootstrapLimit = 3 * time.Minute

// ownTorConfig says how to start cloud's own tor.
type ownTorConfig struct {
	dir    string // the configuration directory; tor's data goes in dir/tor
	torrc  string // --torrc: a file of extra lines, or ""
	onion  string // the onion to write a client key file for
	key    *ecdh.PrivateKey
	stderr io.Writer
	// limit bounds the bootstrap; 0 means bootstrapLimit.
	limit time.Duration
}

// ownTor is a tor cloud started for one command, through bine. It
// exits when cloud closes it, and also when cloud dies: it is told
// TAKEOWNERSHIP on bine's control connection, which the kernel closes
// with cloud.
type ownTor struct {
	t      *tor.Tor
	ctl    *hiddenservice.Controller
	socks  string
	remove string // a temporary data directory to remove, or ""
}

// startOwnTor starts tor with its data in DIR/tor (kept, so later runs
// bootstrap fast; a copy when another cloud's tor holds it), the client
// key for the onion in DIR/tor/onion_auth, a SOCKS port on 127.0.0.1
// with ExtendedErrors, and no GeoIP; and waits for it to bootstrap,
// showing its progress on stderr when that takes more than a moment.
func startOwnTor(ctx context.Context, c ownTorConfig) (*ownTor, error) {
	extra, err := readTorrc(c.torrc)
	if err != nil {
		return nil, err
	}
	exe, err := findTorExe()
	if err != nil {
		return nil, err
	}
	own := &ownTor{}
	data, err := own.dataDir(c)
	if err != nil {
		return nil, err
	}
	authDir := filepath.Join(data, "onion_auth")
	if _, err := hiddenservice.WriteAuthPrivate(authDir, c.onion, c.key); err != nil {
		return nil, own.fail(fmt.Errorf("tor: the client key file: %w", err))
	}
	rc := filepath.Join(data, "torrc")
	if err := os.WriteFile(rc, []byte(ownTorrc(data, authDir, extra)), 0o600); err != nil {
		return nil, own.fail(fmt.Errorf("tor: %w", err))
	}
	out := &tailBuffer{max: 4 << 10}
	own.t, err = tor.Start(context.WithoutCancel(ctx), &tor.StartConf{
		ProcessCreator:  torCreator(exe, out),
		DataDir:         data,
		TorrcFile:       rc,
		EnableNetwork:   true,
		NoAutoSocksPort: true, // the torrc has one, with ExtendedErrors
	})
	if err != nil {
		return nil, own.fail(fmt.Errorf("starting tor (%s): %w%s", exe, err, out.said()))
	}
	if err := own.connect(ctx); err != nil {
		return nil, own.fail(fmt.Errorf("tor: %w%s", err, out.said()))
	}
	if err := own.bootstrap(ctx, c.stderr, cmp.Or(c.limit, bootstrapLimit)); err != nil {
		return nil, own.fail(fmt.Errorf("%w%s", err, out.said()))
	}
	return own, nil
}

// ownTorrc is the configuration of cloud's own tor; bine adds the data
// directory, cookie authentication and an automatic control port.
func ownTorrc(data, authDir, extra string) string {
	lines := []string{
		"# written by cloud each time it starts tor; add lines with --torrc FILE",
		"SocksPort 127.0.0.1:auto ExtendedErrors",
		"ClientOnionAuthDir " + authDir,
		`GeoIPFile ""`,
		`GeoIPv6File ""`,
		"Log notice file " + filepath.Join(data, "notice.log"),
		"__OwningControllerProcess " + strconv.Itoa(os.Getpid()),
	}
	s := strings.Join(lines, "\n") + "\n"
	if extra != "" {
		s += "# from --torrc\n" + extra
		if !strings.HasSuffix(extra, "\n") {
			s += "\n"
		}
	}
	return s
}

// findTorExe finds the tor program, or says how to get one.
func findTorExe() (string, error) {
	for _, name := range torDefaults.exes {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no tor to reach the onion: nothing listens on %s and no tor program was found (looked for %s).\n"+
		"Install tor (apt install tor), or give the SOCKS port of a running tor with --tor-socks HOST:PORT",
		torDefaults.socks, strings.Join(torDefaults.exes, ", "))
}

func readTorrc(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", usagef("--torrc: %v", err)
	}
	return string(b), nil
}

// dataDir is DIR/tor, or a copy of its caches when another cloud's tor
// holds its lock (tor allows one process per data directory).
func (o *ownTor) dataDir(c ownTorConfig) (string, error) {
	data := filepath.Join(c.dir, "tor")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return "", fmt.Errorf("tor's data directory: %w", err)
	}
	os.Chmod(data, 0o700) // tor refuses a directory others can read
	if !locked(filepath.Join(data, "lock")) {
		return data, nil
	}
	tmp, err := os.MkdirTemp(c.dir, "tor-")
	if err != nil {
		return "", fmt.Errorf("tor's data directory: %w", err)
	}
	o.remove = tmp
	for _, f := range []string{"cached-certs", "cached-microdesc-consensus", "cached-microdescs", "cached-microdescs.new"} {
		copyFile(filepath.Join(data, f), filepath.Join(tmp, f)) // a cache: missing is fine
	}
	fmt.Fprintf(c.stderr, "tor: another cloud's tor uses %s; starting one more in %s\n", data, tmp)
	return tmp, nil
}

// locked reports whether a tor holds the lock file at path.
func locked(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o600)
}

// torCreator runs tor with its output kept in out (tor prints its
// warnings to stdout, which is cloud's) and ended by SIGTERM should
// cloud die first, where the OS can do that (torProcAttr).
func torCreator(exe string, out io.Writer) process.Creator {
	return process.CmdCreatorFunc(func(ctx context.Context, args ...string) (*exec.Cmd, error) {
		cmd := exec.CommandContext(ctx, exe, args...)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = torProcAttr()
		return cmd, nil
	})
}

// connect takes ownership of tor on bine's connection and opens this
// package's own (hiddenservice.Controller) beside it.
func (o *ownTor) connect(ctx context.Context) error {
	if _, err := o.t.Control.SendRequest("TAKEOWNERSHIP"); err != nil {
		return fmt.Errorf("TAKEOWNERSHIP: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ctl, err := hiddenservice.Dial(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(o.t.ControlPort))
	if err != nil {
		return err
	}
	o.ctl = ctl
	v, err := ctl.GetInfo(ctx, "net/listeners/socks")
	if err != nil {
		return err
	}
	o.socks = strings.Trim(strings.Fields(v + " ")[0], `"`)
	if o.socks == "" {
		return errors.New("tor opened no SOCKS port")
	}
	return nil
}

// bootstrap waits until tor can build circuits, for at most limit,
// saying how far it got every time that changes once it has taken more
// than a second, and every 15 s while it does not.
func (o *ownTor) bootstrap(ctx context.Context, stderr io.Writer, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	began, shown, said := time.Now(), -1, time.Time{}
	var last hiddenservice.Bootstrap
	for {
		b, err := o.ctl.Bootstrap(ctx)
		if err == nil && b.Progress == 100 {
			if shown >= 0 {
				fmt.Fprintf(stderr, "tor: bootstrapped in %v\n", time.Since(began).Round(100*time.Millisecond))
			}
			return nil
		}
		if err != nil && ctx.Err() != nil {
			return bootstrapStuck(last, time.Since(began))
		}
		if err != nil {
			return fmt.Errorf("tor: bootstrap: %w", err)
		}
		last = b
		switch {
		case b.Progress != shown && time.Since(began) > time.Second:
			fmt.Fprintf(stderr, "tor: bootstrapping %d%% (%s)\n", b.Progress, lowerFirst(b.Summary))
			shown, said = b.Progress, time.Now()
		case shown >= 0 && time.Since(said) > 15*time.Second:
			fmt.Fprintf(stderr, "tor: still at %d%% (%s) after %v; giving up after %v\n",
				b.Progress, lowerFirst(b.Summary), time.Since(began).Round(time.Second), limit)
			said = time.Now()
		}
		if sleep(ctx, 250*time.Millisecond) != nil {
			return bootstrapStuck(last, time.Since(began))
		}
	}
}

// bootstrapStuck says how far tor got and what may help.
func bootstrapStuck(b hiddenservice.Bootstrap, after time.Duration) error {
	msg := fmt.Sprintf("tor did not finish bootstrapping within %v: it is at %d%% (%s)", after.Round(time.Second), b.Progress, lowerFirst(b.Summary))
	if b.Warning != "" && !strings.EqualFold(b.Warning, "done") { // "DONE": a connection closed, no news
		msg += fmt.Sprintf(", and warns: %s (%s)", b.Warning, b.Reason)
	}
	return errors.New(msg + ".\nIf this network blocks tor, give bridges with --torrc FILE (lines such as " +
		"'UseBridges 1' and 'Bridge obfs4 ...'); tor keeps what it fetched, so a retry starts further on")
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// close stops tor (HALT on bine's connection) and removes a temporary
// data directory.
func (o *ownTor) close() {
	if o.ctl != nil {
		o.ctl.Close()
	}
	if o.t != nil {
		o.t.Close()
	}
	if o.remove != "" {
		os.RemoveAll(o.remove)
	}
}

// fail closes what was started and returns err.
func (o *ownTor) fail(err error) error {
	o.close()
	return err
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = t.b[over:]
	}
	return len(p), nil
}

// said is what tor printed, for an error message, or "".
func (t *tailBuffer) said() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(bytes.ToValidUTF8(t.b, nil)))
	if s == "" {
		return ""
	}
	return "\ntor said:\n" + s
}
