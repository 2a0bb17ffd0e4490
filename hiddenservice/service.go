package hiddenservice

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cretz/bine/control"
)

// DefaultUploadTimeout is how long Publish waits for tor to upload the
// first descriptor. A tor that has just started may need most of it
// to bootstrap on a slow VPS.
const DefaultUploadTimeout = 3 * time.Minute

// Onion is an onion service to publish.
type Onion struct {
	// Key is the service's identity; its address is KeyAddress(Key).
	Key ed25519.PrivateKey
	// Clients are the x25519 public keys of the authorized clients. An
	// empty list is refused (ErrNoClients).
	Clients []*ecdh.PublicKey
	// Port is the virtual port clients connect to; 0 means 80.
	Port int
	// Target is where tor forwards connections: "127.0.0.1:PORT" of a
	// local listener.
	Target string
	// MaxStreams caps the streams (connections) one rendezvous circuit,
	// a client's session, may have open at once; tor closes the
	// circuit of a client that opens more (MaxStreamsCloseCircuit).
	// All the onion's connections reach Target from tor on loopback,
	// so this is the onion's cap per source. 0 means none.
	MaxStreams int
}

func (o Onion) port() int {
	if o.Port == 0 {
		return 80
	}
	return o.Port
}

func (o Onion) validate() error {
	if len(o.Key) != ed25519.PrivateKeySize {
		return errors.New("hiddenservice: onion: no ed25519 key")
	}
	if len(o.Clients) == 0 {
		return ErrNoClients
	}
	if o.MaxStreams < 0 || o.MaxStreams > 65535 {
		return fmt.Errorf("hiddenservice: onion: max streams %d out of range (0 = no cap)", o.MaxStreams)
	}
	if o.port() < 1 || o.port() > 65535 {
		return fmt.Errorf("hiddenservice: onion: port %d out of range", o.Port)
	}
	host, port, err := net.SplitHostPort(o.Target)
	if err != nil || net.ParseIP(host) == nil || port == "0" || strings.ContainsAny(o.Target, " \r\n") {
		return fmt.Errorf("hiddenservice: onion: target %q: want IP:PORT, such as 127.0.0.1:7707", o.Target)
	}
	return nil
}

// AddOnionCommand is the ADD_ONION command that publishes o, detached
// from the control connection (it stays until DEL_ONION or tor exits)
// and with v3 client authorization:
//
//	ADD_ONION ED25519-V3:<base64 expanded key> Flags=Detach,V3Auth Port=80,127.0.0.1:7707 ClientAuthV3=<base32> ...
//
// bine's AddOnion cannot send ClientAuthV3 (its ClientAuths send the
// v2 ClientAuth keyword, on which tor 0.4.9 hangs), so this is sent raw.
func AddOnionCommand(o Onion) (string, error) {
	if err := o.validate(); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("ADD_ONION " + KeyBlob(o.Key) + " Flags=Detach,V3Auth")
	if o.MaxStreams > 0 {
		b.WriteString(",MaxStreamsCloseCircuit MaxStreams=" + strconv.Itoa(o.MaxStreams))
	}
	b.WriteString(" Port=" + strconv.Itoa(o.port()) + "," + o.Target)
	for _, c := range o.Clients {
		b.WriteString(" ClientAuthV3=" + FormatClientPublicKey(c))
	}
	return b.String(), nil
}

// DelOnionCommand removes the onion with this address.
func DelOnionCommand(addr string) string { return "DEL_ONION " + ID(addr) }

// Service publishes one onion through a tor's control connection and
// keeps it published. Publish is also how it comes back after tor
// restarts: call it again with the new Controller. Its methods are safe
// for concurrent use; calls run one at a time.
type Service struct {
	// UploadTimeout bounds Publish's wait for the first descriptor
	// upload; 0 means DefaultUploadTimeout.
	UploadTimeout time.Duration
	// Log receives progress; nil means none.
	Log *slog.Logger

	mu    sync.Mutex
	onion Onion
}

// NewService checks o and returns a Service for it.
func NewService(o Onion) (*Service, error) {
	if _, err := AddOnionCommand(o); err != nil {
		return nil, err
	}
	return &Service{onion: o}, nil
}

// Address is the onion's address, xxxx.onion.
func (s *Service) Address() string { return KeyAddress(s.onion.Key) }

// Onion returns the onion as it will next be published.
func (s *Service) Onion() Onion {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.onion
}

// Publish makes tor serve the onion with the current client list and
// waits until a descriptor has reached an HSDir (then clients can find
// it). It replaces any copy tor already serves: DEL_ONION, CLOSECIRCUIT
// of the onion's rendezvous circuits (see closeRendezvous), then
// ADD_ONION. If the wait times out, tor has the onion and keeps trying
// to upload; the error wraps ErrUploadTimeout.
func (s *Service) Publish(ctx context.Context, c *Controller) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.publish(ctx, c)
}

// Update replaces the authorized clients and publishes again at once.
//
// During the switch the onion is briefly gone: DEL_ONION closes its
// introduction circuits and Publish closes its rendezvous circuits, so
// open connections through it are cut and new ones fail until the new
// descriptor is uploaded (about 2 s on the test network; up to a
// minute on the real one). A removed client is locked out from that
// moment on: its circuits are gone and the new descriptor is not
// encrypted to its key. Clients that stay reconnect and fetch the new
// descriptor. On error the new list is kept and is what the next
// Publish uses.
func (s *Service) Update(ctx context.Context, c *Controller, clients []*ecdh.PublicKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.onion
	o.Clients = clients
	if err := o.validate(); err != nil {
		return err
	}
	s.onion = o
	return s.publish(ctx, c)
}

// Remove stops serving the onion (DEL_ONION). An onion tor does not
// know is not an error.
func (s *Service) Remove(ctx context.Context, c *Controller) error {
	_, err := c.Request(ctx, DelOnionCommand(s.Address()), 552)
	return err
}

func (s *Service) publish(ctx context.Context, c *Controller) error {
	start := time.Now()
	cmd, err := AddOnionCommand(s.onion)
	if err != nil {
		return err
	}
	if err := c.EnableEvents(ctx, control.EventCodeHSDesc); err != nil {
		return err
	}
	if err := s.Remove(ctx, c); err != nil {
		return err
	}
	if err := s.closeRendezvous(ctx, c); err != nil {
		return err
	}
	if err := s.add(ctx, c, cmd); err != nil {
		return err
	}
	s.log().Info("tor accepted the onion; waiting for the descriptor upload", "onion", s.Address(), "clients", len(s.onion.Clients))
	if err := s.waitUploaded(ctx, c); err != nil {
		return err
	}
	s.log().Info("onion published", "onion", s.Address(), "after", time.Since(start).Round(time.Millisecond))
	return nil
}

// closeRendezvous closes the onion's rendezvous circuits. DEL_ONION
// leaves them open "for existing connections to finish", and once the
// same key is added again they serve new streams as before: a client
// just removed from the list would keep its access for as long as it
// keeps its circuit.
func (s *Service) closeRendezvous(ctx context.Context, c *Controller) error {
	status, err := c.GetInfo(ctx, "circuit-status")
	if err != nil {
		return err
	}
	ids := RendezvousCircuits(status, s.Address())
	for _, id := range ids {
		// 552: the circuit closed meanwhile.
		if _, err := c.Request(ctx, "CLOSECIRCUIT "+id, 552); err != nil {
			return err
		}
	}
	if len(ids) > 0 {
		s.log().Info("closed the onion's rendezvous circuits", "onion", s.Address(), "circuits", len(ids))
	}
	return nil
}

// RendezvousCircuits returns the IDs of the service-side rendezvous
// circuits of the onion at addr in a GETINFO circuit-status value, one
// circuit a line:
//
//	17 BUILT $A~relay1,$B~relay2 BUILD_FLAGS=IS_INTERNAL PURPOSE=HS_SERVICE_REND HS_STATE=HSSR_JOINED REND_QUERY=<id> ...
func RendezvousCircuits(status, addr string) []string {
	id := ID(addr)
	var ids []string
	for _, line := range strings.Split(status, "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && slices.Contains(f, "PURPOSE=HS_SERVICE_REND") && slices.Contains(f, "REND_QUERY="+id) {
			ids = append(ids, f[0])
		}
	}
	return ids
}

// add sends ADD_ONION and checks that tor serves the address we expect.
func (s *Service) add(ctx context.Context, c *Controller, cmd string) error {
	resp, err := c.Request(ctx, cmd)
	if err != nil {
		return err
	}
	want := ID(s.Address())
	for _, d := range resp.Data {
		if id, ok := strings.CutPrefix(d, "ServiceID="); ok && id != want {
			return fmt.Errorf("hiddenservice: ADD_ONION: tor serves %s, want %s", id, want)
		}
	}
	return nil
}

// waitUploaded reads events until tor reports an upload of this onion's
// descriptor, logging each attempt.
func (s *Service) waitUploaded(ctx context.Context, c *Controller) error {
	deadline := time.Now().Add(s.uploadTimeout())
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	id := ID(s.Address())
	for {
		ev, err := c.NextEvent(wctx)
		if err != nil && ctx.Err() == nil && !time.Now().Before(deadline) {
			return fmt.Errorf("%w: waited %s", ErrUploadTimeout, s.uploadTimeout())
		}
		if err != nil {
			return err
		}
		hs, ok := ev.(*control.HSDescEvent)
		if !ok || hs.Address != id {
			continue
		}
		s.log().Debug("descriptor", "action", hs.Action, "hsdir", hs.HSDir, "reason", hs.Reason)
		if hs.Action == "UPLOADED" {
			return nil
		}
	}
}

func (s *Service) uploadTimeout() time.Duration {
	if s.UploadTimeout == 0 {
		return DefaultUploadTimeout
	}
	return s.UploadTimeout
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// AddClientAuth gives a running client tor the key for the onion at
// addr (ONION_CLIENT_AUTH_ADD). tor's 251 (replaced) and 252 (added and
// decrypted a cached descriptor) are successes, which bine alone would
// report as errors.
func (c *Controller) AddClientAuth(ctx context.Context, addr string, priv *ecdh.PrivateKey, opts ClientAuthOptions) error {
	cmd, err := ClientAuthAddCommand(addr, priv, opts)
	if err != nil {
		return err
	}
	_, err = c.Request(ctx, cmd, 251, 252)
	return err
}

// IsTorError reports whether err carries tor reply code code.
func IsTorError(err error, code int) bool {
	var te *textproto.Error
	return errors.As(err, &te) && te.Code == code
}
