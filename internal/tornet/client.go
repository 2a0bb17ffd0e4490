package tornet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cretz/bine/control"

	"allium/internal/testkit"
)

// Client is a client tor on the network, with a SOCKS port and a
// ClientOnionAuthDir.
type Client struct {
	// Name is its nickname and the name of its directory.
	Name string
	// Dir is its DataDirectory.
	Dir string
	// SocksAddr is its SOCKS port, 127.0.0.1:PORT, with ExtendedErrors
	// (onion failures come back as replies 0xF0-0xF7).
	SocksAddr string
	// AuthDir is its ClientOnionAuthDir: put <id>.auth_private files
	// there before StartClient, or use ONION_CLIENT_AUTH_ADD later.
	AuthDir string
	// ControlSocket is its control socket (cookie authentication).
	ControlSocket string

	proc *proc
}

// StartClient starts a client tor whose directory is Dir()/name and
// waits until it has bootstrapped. prepare, if not nil, runs before tor
// starts, with the Client's paths set: the time to write .auth_private
// files. extra lines go into its torrc.
func (n *Network) StartClient(ctx context.Context, name string, prepare func(*Client) error, extra ...string) (*Client, error) {
	c, err := n.newClient(name)
	if err != nil {
		return nil, err
	}
	if prepare != nil {
		if err := prepare(c); err != nil {
			return nil, err
		}
	}
	rc := filepath.Join(c.Dir, "torrc")
	if err := os.WriteFile(rc, []byte(n.clientTorrc(c, extra)), 0o600); err != nil {
		return nil, fmt.Errorf("tornet: %w", err)
	}
	if c.proc, err = startProc(n.opts.Tor, name, c.Dir, rc); err != nil {
		return nil, err
	}
	if err := n.track(c); err != nil {
		return nil, err
	}
	if err := c.WaitBootstrapped(ctx); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, tail(filepath.Join(c.Dir, "notice.log"), 10))
	}
	return c, nil
}

func (n *Network) newClient(name string) (*Client, error) {
	c := &Client{Name: name, Dir: filepath.Join(n.dir, name)}
	c.AuthDir = filepath.Join(c.Dir, "onion_auth")
	c.ControlSocket = filepath.Join(c.Dir, "control")
	if len(c.ControlSocket) > 100 {
		return nil, fmt.Errorf("tornet: %s: too long for a unix socket: use a shorter Options.Dir", c.ControlSocket)
	}
	for _, d := range []string{c.Dir, c.AuthDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("tornet: %w", err)
		}
	}
	port, err := FreePort()
	c.SocksAddr = "127.0.0.1:" + strconv.Itoa(port)
	return c, err
}

func (n *Network) clientTorrc(c *Client, extra []string) string {
	lines := append(n.commonLines(c.Name, c.Dir),
		"SocksPort "+c.SocksAddr+" ExtendedErrors",
		"ControlPort unix:"+c.ControlSocket,
		"CookieAuthentication 1",
		"ClientOnionAuthDir "+c.AuthDir,
		"UseEntryGuards 0",
	)
	return strings.Join(append(lines, extra...), "\n") + "\n"
}

func (n *Network) track(c *Client) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		c.proc.stop()
		return errors.New("tornet: network closed")
	}
	n.clients = append(n.clients, c)
	return nil
}

// PID is the client tor's process ID.
func (c *Client) PID() int { return c.proc.cmd.Process.Pid }

// Close stops the client tor (the Network's Close does too).
func (c *Client) Close() { c.proc.stop() }

// Control dials and authenticates to the client's control socket.
func (c *Client) Control(ctx context.Context) (*control.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", c.ControlSocket)
	if err != nil {
		return nil, fmt.Errorf("tornet: %s control: %w", c.Name, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	conn := control.NewConn(textproto.NewConn(nc))
	if err := conn.Authenticate(""); err != nil {
		nc.Close()
		return nil, fmt.Errorf("tornet: %s control: %w", c.Name, err)
	}
	nc.SetDeadline(time.Time{})
	return conn, nil
}

// WaitBootstrapped waits until the client reports 100% bootstrapped.
func (c *Client) WaitBootstrapped(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var conn *control.Conn
	var err error
	for conn == nil {
		if !c.proc.running() {
			return fmt.Errorf("tornet: %s exited: %v", c.Name, c.proc.cmd.ProcessState)
		}
		if conn, err = c.Control(ctx); err != nil && !testkit.Sleep(ctx, 100*time.Millisecond) {
			return err
		}
	}
	defer conn.Close()
	for {
		kv, err := conn.GetInfo("status/bootstrap-phase")
		if err != nil {
			return fmt.Errorf("tornet: %s: %w", c.Name, err)
		}
		if len(kv) == 1 && strings.Contains(kv[0].Val, "PROGRESS=100 ") {
			return nil
		}
		if !testkit.Sleep(ctx, 100*time.Millisecond) {
			return fmt.Errorf("tornet: %s did not bootstrap: %w (%v)", c.Name, ctx.Err(), kv)
		}
	}
}
