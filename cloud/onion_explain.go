package main

import (
	"context"
	"errors"
	"fmt"

	"allium/api"
	"allium/hiddenservice"
)

// socksWords says what a tor SOCKS reply means.
func socksWords(code byte) string {
	switch code {
	case 0xF0:
		return "tor found no descriptor for the onion (SOCKS reply 0xF0)"
	case 0xF1:
		return "the onion's descriptor is invalid (SOCKS reply 0xF1)"
	case 0xF2:
		return "the onion's introduction failed (SOCKS reply 0xF2)"
	case 0xF3:
		return "the onion's rendezvous failed (SOCKS reply 0xF3)"
	case 0xF4:
		return "the onion's descriptor cannot be decrypted (SOCKS reply 0xF4)"
	case 0xF5:
		return "the onion's descriptor cannot be decrypted with this client's key (SOCKS reply 0xF5)"
	case 0xF6:
		return "tor says the onion address is invalid (SOCKS reply 0xF6)"
	case 0xF7:
		return "the onion's introduction timed out (SOCKS reply 0xF7)"
	}
	return (&hiddenservice.SOCKSError{Code: code}).Error()
}

// explainOnion explains an error met reaching an onion through tor, or
// returns nil when err is not about the way there.
func (s *session) explainOnion(err error) error {
	if s.link == nil {
		return nil
	}
	var se *hiddenservice.SOCKSError
	var down *torDown
	var slow *attemptTimeout
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("cannot reach %s through tor: %s", s.target, s.socksAdvice(se.Code))
	case errors.As(err, &down):
		return fmt.Errorf("cannot reach %s: %v.\nIs tor running? Start one (apt install tor), "+
			"or give the SOCKS port of a running tor with --tor-socks HOST:PORT", s.target, down)
	case errors.As(err, &slow):
		return fmt.Errorf("cannot reach %s through tor: %v, %d times over: the node may be down or its onion not yet "+
			"published (a minute after it boots), or tor cannot build circuits; try again later", s.target, slow, onionRetries+1)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("cannot reach %s through tor: no answer within %v (--timeout): the node may be down or its "+
			"onion not yet published, or tor is slow to build circuits; try again, or give a longer --timeout", s.target, s.timeout)
	}
	return nil
}

// socksAdvice says what a SOCKS reply means for this node and what to do.
func (s *session) socksAdvice(code byte) string {
	what := socksWords(code)
	switch code {
	case 0xF4:
		if s.link.keyNotGiven != "" {
			return fmt.Sprintf("%s: cloud could not hand tor this client's x25519 key (%s): %s.\n"+
				"Give tor's control port with --tor-control ADDR, or let cloud start its own tor (stop the one at %s, or use --torrc)",
				what, s.link.keyPath, s.link.keyNotGiven, s.link.socks)
		}
		fallthrough
	case 0xF5:
		return fmt.Sprintf("%s: this client's x25519 key (%s) is not authorized on %s "+
			"(never added, removed, or the node was rebuilt with other keys).\n%s",
			what, s.link.keyPath, s.name, s.askAdmin())
	case 0xF6:
		return what + ": check the onion in the alias (cloud nodes) or the address given"
	case 0xF0, 0xF1:
		return what + ": the node is down, its tor has not published the onion yet (that takes a minute after boot), or the address is wrong"
	case 0xF2, 0xF3, 0xF7:
		return what + ": the node's tor may be restarting or its circuits failing; try again in a minute"
	}
	return what + "; this tor's SocksPort lacks the ExtendedErrors flag, so cloud cannot tell why: " +
		"add ExtendedErrors to its SocksPort line for details (or let cloud start its own tor)"
}

// askAdmin says how a node comes to authorize this client.
func (s *session) askAdmin() string {
	return fmt.Sprintf("Ask an admin of %s to run `cloud keys %s add ...` with this client's keys: x25519 %s and ed25519 %s",
		s.name, s.name, hiddenservice.FormatClientPublicKey(s.link.key.PublicKey()), api.FormatKey(s.clientKey))
}
