package main

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"

	"allium/hiddenservice"
	"allium/rootfs"
)

// onionKeys are the keys of the node's onion service: the service's own
// key, which names its .onion address, and the client's x25519 key, the
// one the service lets find its descriptor (v3 client authorization).
// The zero value, with --no-tor, is no onion service.
type onionKeys struct {
	service               ed25519.PrivateKey
	client                *ecdh.PrivateKey
	serviceNew, clientNew bool
	port                  int // the virtual port
}

// address is ID.onion:PORT, as the alias records it; "" without an
// onion service.
func (o onionKeys) address() string {
	if o.service == nil {
		return ""
	}
	return net.JoinHostPort(hiddenservice.KeyAddress(o.service), strconv.Itoa(o.port))
}

// clientPublic is the client's x25519 public key, raw, as
// api.AuthorizedKey takes it; nil without an onion service.
func (o onionKeys) clientPublic() []byte {
	if o.client == nil {
		return nil
	}
	return o.client.PublicKey().Bytes()
}

// loadOnionKeys loads or makes the onion service's key (in DIR beside
// node.key, so a rebuild keeps the .onion address) and the client's
// x25519 key (in the client config, one for every node).
func (b *build) loadOnionKeys(context.Context) (err error) {
	if b.f.noTor {
		return nil
	}
	o := &b.onion
	o.port = rootfs.NodeConfig{}.OnionPort()
	o.service, o.serviceNew, err = loadOrCreateOnionKey(b.path(onionKeyFile))
	if err != nil {
		return fmt.Errorf("onion key: %w: delete it to make a new one (the node gets a new .onion address)", err)
	}
	o.client, o.clientNew, err = hiddenservice.LoadOrCreateClientKeyFile(b.cfg.OnionKeyPath())
	if err != nil {
		return fmt.Errorf("client onion key: %w: delete it to make a new one (then rebuild every node that knows the old one)", err)
	}
	return nil
}

// loadOrCreateOnionKey reads the onion service key at path, or makes one
// and writes it there (0600, atomically) when there is none.
func loadOrCreateOnionKey(path string) (ed25519.PrivateKey, bool, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := hiddenservice.ParseKey(b)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", path, err)
		}
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	k, err := hiddenservice.NewKey()
	if err != nil {
		return nil, false, err
	}
	pem, err := hiddenservice.MarshalKey(k)
	if err != nil {
		return nil, false, err
	}
	if err := writeOut(path, pem, 0o600); err != nil {
		return nil, false, err
	}
	return k, true, nil
}
