package netup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// nclient is the dhcpClient over nclient4, on a raw packet socket bound to
// one link, so it works before the link has an address.
type nclient struct {
	c    *nclient4.Client
	mods []dhcpv4.Modifier // added to every message
}

// dialDHCP opens a client on dev. Each exchange waits 1 s, then 2 s, then
// 4 s for an answer; the leaser's attempt deadline caps the whole of it.
func dialDHCP(dev, hostname string, log *slog.Logger) (dhcpClient, error) {
	c, err := nclient4.New(dev,
		nclient4.WithTimeout(time.Second),
		nclient4.WithRetry(3),
		nclient4.WithLogger(nclientLog{log}))
	if err != nil {
		return nil, err
	}
	n := &nclient{c: c}
	if hostname != "" {
		// Lets a server such as dnsmasq register the name.
		name, _, _ := strings.Cut(hostname, ".")
		n.mods = append(n.mods, dhcpv4.WithOption(dhcpv4.OptHostName(name)))
	}
	return n, nil
}

func (n *nclient) request(ctx context.Context) (*grant, error) {
	return fromLease(n.c.Request(ctx, n.mods...))
}

func (n *nclient) renew(ctx context.Context, g *grant) (*grant, error) {
	mods, err := n.newTransaction()
	if err != nil {
		return nil, err
	}
	return fromLease(n.c.Renew(ctx, &nclient4.Lease{Offer: g.offer, ACK: g.ack}, mods...))
}

// newTransaction returns n.mods with a fresh transaction id. Renew and
// rebind would otherwise reuse the id of the ack they start from.
func (n *nclient) newTransaction() ([]dhcpv4.Modifier, error) {
	xid, err := dhcpv4.GenerateTransactionID()
	if err != nil {
		return nil, fmt.Errorf("transaction id: %w", err)
	}
	return append(slices.Clone(n.mods), dhcpv4.WithTransactionID(xid)), nil
}

// rebind is Renew without insisting on the server that granted g: in
// REBINDING any server may answer (RFC 2131 section 4.4.5). The answer
// stands in for the offer, so the next Renew expects its server.
func (n *nclient) rebind(ctx context.Context, g *grant) (*grant, error) {
	mods, err := n.newTransaction()
	if err != nil {
		return nil, err
	}
	req, err := dhcpv4.NewRenewFromAck(g.ack, mods...)
	if err != nil {
		return nil, fmt.Errorf("build rebind request: %w", err)
	}
	ack, err := n.c.SendAndRead(ctx, nclient4.DefaultServers, req,
		nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak))
	if err != nil {
		return nil, err
	}
	if ack.MessageType() == dhcpv4.MessageTypeNak {
		return nil, nakError(ack)
	}
	return &grant{offer: ack, ack: ack}, nil
}

func (n *nclient) close() error { return n.c.Close() }

// fromLease turns nclient4's answer into a grant, and its NAK into errNak.
func fromLease(l *nclient4.Lease, err error) (*grant, error) {
	var nak *nclient4.ErrNak
	if errors.As(err, &nak) && nak.Nak != nil {
		return nil, nakError(nak.Nak)
	}
	if err != nil {
		return nil, err
	}
	return &grant{offer: l.Offer, ack: l.ACK}, nil
}

func nakError(nak *dhcpv4.DHCPv4) error {
	if msg := nak.Message(); msg != "" {
		return fmt.Errorf("%w: %q", errNak, msg)
	}
	return errNak
}

// nclientLog sends nclient4's messages to slog at debug level.
type nclientLog struct{ log *slog.Logger }

func (l nclientLog) Printf(format string, v ...any) {
	l.log.Debug("netup: nclient4: " + fmt.Sprintf(format, v...))
}

func (l nclientLog) PrintMessage(prefix string, m *dhcpv4.DHCPv4) {
	l.log.Debug("netup: dhcp "+prefix, "type", m.MessageType().String(), "xid", m.TransactionID.String())
}
