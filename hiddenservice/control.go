package hiddenservice

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cretz/bine/control"
)

// responseTimeout bounds the reading of one reply once its first bytes
// have arrived, and every request whose context has no deadline.
const responseTimeout = 30 * time.Second

// Controller is an authenticated connection to tor's control port,
// built on bine's control.Conn. Its methods are safe for concurrent use
// (one request at a time) and start no goroutines that outlive a call:
// events are read by the caller, with NextEvent, not by a background
// reader. bine's own EventWait/HandleEvents start goroutines that do
// not recover panics, which PID 1 cannot afford.
//
// A request that fails on the connection itself (not with one of tor's
// error codes) leaves the Controller broken: every later call returns
// that error, and the caller dials again.
type Controller struct {
	// Observer, if not nil, sees every asynchronous event NextEvent
	// reads, before NextEvent returns it. It runs on the caller's
	// goroutine with the Controller locked: it must not call back.
	Observer func(control.Event)

	mu     sync.Mutex
	nc     net.Conn
	tp     *textproto.Conn
	conn   *control.Conn
	events []control.EventCode
	broken error
}

// Dial connects to tor's control port, a unix socket path for network
// "unix" or host:port for "tcp", and authenticates (SAFECOOKIE, or NULL
// when tor asks for nothing).
func Dial(ctx context.Context, network, addr string) (*Controller, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("hiddenservice: control port: %w", err)
	}
	return NewController(ctx, nc)
}

// NewController authenticates over nc, which it then owns.
func NewController(ctx context.Context, nc net.Conn) (*Controller, error) {
	tp := textproto.NewConn(nc)
	c := &Controller{nc: nc, tp: tp, conn: control.NewConn(tp)}
	err := c.locked(ctx, func() error { return c.conn.Authenticate("") })
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("hiddenservice: authenticate to tor: %w", err)
	}
	return c, nil
}

// Conn is bine's connection, for what this type does not wrap. Using
// it while another goroutine uses the Controller is a data race.
func (c *Controller) Conn() *control.Conn { return c.conn }

// Close closes the connection. Detached onions stay published.
func (c *Controller) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken == nil {
		c.broken = net.ErrClosed
	}
	return c.nc.Close()
}

// Request sends one command line and returns tor's reply. A reply code
// other than 250 is an error unless it is in ok; tor's error replies
// are *textproto.Error (check the code with errors.As).
func (c *Controller) Request(ctx context.Context, cmd string, ok ...int) (*control.Response, error) {
	if strings.ContainsAny(cmd, "\r\n") {
		return nil, fmt.Errorf("hiddenservice: control command %q has a line break", cmd)
	}
	var resp *control.Response
	err := c.locked(ctx, func() error {
		var err error
		resp, err = c.conn.SendRequest("%s", cmd)
		if resp != nil && slices.Contains(ok, resp.Err.Code) {
			err = nil
		}
		return err
	})
	if err != nil {
		return resp, fmt.Errorf("hiddenservice: %s: %w", verb(cmd), err)
	}
	return resp, nil
}

// verb is the command word, for error messages that must not repeat
// keys.
func verb(cmd string) string {
	v, _, _ := strings.Cut(cmd, " ")
	return v
}

// locked runs f with the connection's deadline following ctx. A failure
// that is not one of tor's replies breaks the Controller: a read cut
// short may have left half a reply in the buffer.
func (c *Controller) locked(ctx context.Context, f func() error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return fmt.Errorf("control connection unusable: %w", c.broken)
	}
	err := withDeadline(ctx, c.nc, responseTimeout, f)
	var te *textproto.Error
	if err != nil && !errors.As(err, &te) {
		c.broken = err
	}
	return err
}

// withDeadline runs f with nc's deadline at ctx's deadline (or limit from
// now), and moved into the past when ctx is cancelled.
func withDeadline(ctx context.Context, nc net.Conn, limit time.Duration, f func() error) error {
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now().Add(limit)
	}
	nc.SetDeadline(d)
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		defer func() { recover() }() // PID 1: no goroutine may panic it down
		nc.SetDeadline(time.Unix(1, 0))
	})
	defer func() {
		if !stop() {
			<-fired
		}
		nc.SetDeadline(time.Time{})
	}()
	err := f()
	if err != nil && ctx.Err() == nil && ok && !time.Now().Before(d) {
		// The connection's deadline fired a moment before ctx's timer.
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// EnableEvents asks tor for these events too (SETEVENTS replaces the
// whole set, so the Controller keeps the union).
func (c *Controller) EnableEvents(ctx context.Context, codes ...control.EventCode) error {
	c.mu.Lock()
	want := slices.Clone(c.events)
	for _, e := range codes {
		if !slices.Contains(want, e) {
			want = append(want, e)
		}
	}
	c.mu.Unlock()
	cmd := "SETEVENTS"
	for _, e := range want {
		cmd += " " + string(e)
	}
	if _, err := c.Request(ctx, cmd); err != nil {
		return err
	}
	c.mu.Lock()
	c.events = want
	c.mu.Unlock()
	return nil
}

// NextEvent waits for the next asynchronous event, until ctx is done.
// A ctx that ends while no event is arriving leaves the connection
// usable. Events that arrive while a Request waits for its reply are
// dropped (bine relays them to listeners, and this type registers
// none): callers that must not miss one wait with NextEvent between
// requests.
func (c *Controller) NextEvent(ctx context.Context) (control.Event, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return nil, fmt.Errorf("hiddenservice: control connection unusable: %w", c.broken)
	}
	if err := c.waitData(ctx); err != nil {
		return nil, err
	}
	ev, err := c.readEvent()
	if err != nil {
		c.broken = err
		return nil, fmt.Errorf("hiddenservice: read event: %w", err)
	}
	if c.Observer != nil {
		c.Observer(ev)
	}
	return ev, nil
}

// waitData waits until a reply's first bytes are buffered. Peek keeps
// what it read, so a deadline here loses nothing.
func (c *Controller) waitData(ctx context.Context) error {
	for {
		err := withDeadline(ctx, c.nc, time.Hour, func() error {
			_, err := c.tp.R.Peek(4)
			return err
		})
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil, errors.Is(err, context.DeadlineExceeded):
			return err
		case errors.Is(err, os.ErrDeadlineExceeded):
			continue // withDeadline's own limit, not the caller's
		}
		c.broken = err
		return fmt.Errorf("hiddenservice: read event: %w", err)
	}
}

// readEvent reads one whole reply, which must be an event (650).
func (c *Controller) readEvent() (control.Event, error) {
	c.nc.SetReadDeadline(time.Now().Add(responseTimeout))
	defer c.nc.SetReadDeadline(time.Time{})
	resp, err := c.conn.ReadResponse()
	if err != nil {
		return nil, err
	}
	if !resp.IsAsync() {
		return nil, fmt.Errorf("unexpected reply %q while waiting for an event", resp.RawLines)
	}
	code, data, lines := splitEvent(resp)
	return control.ParseEvent(code, data, lines), nil
}

// splitEvent cuts an event reply into its code and data as bine's
// (unexported) relayAsyncEvents does.
func splitEvent(resp *control.Response) (control.EventCode, string, []string) {
	switch {
	case len(resp.Data) == 1:
		if i := strings.Index(resp.Data[0], "\r\n"); i >= 0 && !strings.Contains(resp.Data[0][:i], " ") {
			return control.EventCode(resp.Data[0][:i]), resp.Data[0][i+2:], nil
		}
		code, data, _ := strings.Cut(resp.Data[0], " ")
		return control.EventCode(code), data, nil
	case len(resp.Data) > 1:
		return control.EventCode(resp.Data[0]), "", resp.Data[1:]
	}
	code, data, _ := strings.Cut(resp.Reply, " ")
	return control.EventCode(code), data, nil
}

// GetInfo asks tor for one GETINFO key and returns its value.
func (c *Controller) GetInfo(ctx context.Context, key string) (string, error) {
	resp, err := c.Request(ctx, "GETINFO "+key)
	if err != nil {
		return "", err
	}
	for _, d := range resp.Data {
		if k, v, ok := strings.Cut(d, "="); ok && k == key {
			return strings.TrimPrefix(v, "\r\n"), nil // multi-line values start with one
		}
	}
	return "", fmt.Errorf("hiddenservice: GETINFO %s: no value in %q", key, resp.RawLines)
}

// Bootstrap asks tor how far it has bootstrapped.
func (c *Controller) Bootstrap(ctx context.Context) (Bootstrap, error) {
	v, err := c.GetInfo(ctx, "status/bootstrap-phase")
	if err != nil {
		return Bootstrap{}, err
	}
	return ParseBootstrap(v)
}

// Signal sends a SIGNAL command (RELOAD, NEWNYM, SHUTDOWN...).
func (c *Controller) Signal(ctx context.Context, sig string) error {
	_, err := c.Request(ctx, "SIGNAL "+sig)
	return err
}
