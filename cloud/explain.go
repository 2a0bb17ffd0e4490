package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"syscall"

	"allium/api"
)

// explain turns what the client met into an error that says what was
// wrong and what to do, naming the node.
func (s *session) explain(err error) error {
	var apiErr *api.Error
	switch {
	case errors.Is(err, api.ErrNodeKey):
		return s.wrongNodeKey(err)
	case errors.As(err, &apiErr) && apiErr.Code == api.CodeUnauthorized:
		return s.unauthorized()
	case errors.As(err, &apiErr):
		return fmt.Errorf("%s answered: %s (HTTP %d, %s)", s.name, apiErr.Message, apiErr.Status, apiErr.Code)
	}
	if e := s.explainOnion(err); e != nil {
		return e
	}
	if reason := s.unreachable(err); reason != "" {
		return fmt.Errorf("cannot reach %s: %s; is the node up and the port forwarded?", s.target, reason)
	}
	var ue *url.Error // drop the `Get "https://…"` prefix: the node is named
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("%s: %w", s.target, err)
}

// unreachable says why the node could not be reached at all, or "" when
// it was reached.
func (s *session) unreachable(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("no answer within %v (--timeout)", s.timeout)
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		return ""
	}
	var errno syscall.Errno
	var dns *net.DNSError
	switch {
	case errors.As(op.Err, &errno):
		return errno.Error() // "connection refused", "no route to host"
	case errors.As(op.Err, &dns):
		return dns.Error()
	case op.Timeout():
		return "the connection timed out"
	}
	return op.Err.Error()
}

// presented finds the fingerprint of the key the node presented in the
// text of an api.ErrNodeKey error.
var presented = regexp.MustCompile(`presented (SHA256:[A-Za-z0-9+/]+)`)

func (s *session) wrongNodeKey(err error) error {
	got := "a key cloud could not read from the error (" + err.Error() + ")"
	if m := presented.FindStringSubmatch(err.Error()); m != nil {
		got = m[1]
	}
	which := "the node whose key --node-key gives"
	if s.keyFrom != "--node-key" {
		which = "the node " + s.keyFrom + " names"
	}
	return fmt.Errorf("%s presented a different key than %s pins: it presented %s, %s pins %s.\n"+
		"Either this is not %s, or that node was rebuilt with a new key; "+
		"if it was rebuilt, save its new key in the alias (mkimage does) or pass --node-key",
		s.target, s.keyFrom, got, s.keyFrom, api.Fingerprint(s.nodeKey), which)
}

func (s *session) unauthorized() error {
	return fmt.Errorf("%s refused this client's key %s: it is not authorized on the node (your key: %s)\n"+
		"Use --config (or $ALLIUM_CONFIG) for the directory whose key the node authorizes, "+
		"or rebuild the node with mkimage from this one",
		s.name, api.Fingerprint(s.clientKey), s.keyPath)
}
