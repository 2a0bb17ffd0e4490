package hiddenservice

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// v3 client authorization: the service encrypts its descriptor to the
// x25519 public keys of its clients; a client without one of the
// private keys cannot decrypt it, so it cannot even find the service's
// introduction points. tor spells the keys three ways:
//
//	ADD_ONION ... ClientAuthV3=<base32 public key>              (service side)
//	<id>.auth_private: <id>:descriptor:x25519:<base32 private>   (ClientOnionAuthDir)
//	ONION_CLIENT_AUTH_ADD <id> x25519:<base64 private key>       (client control port)
//
// base32 here is RFC 4648's alphabet without padding: 52 characters for
// 32 bytes.

// ClientKeyLen is the length of a base32 x25519 key.
const ClientKeyLen = 52

// NewClientKey makes a new x25519 client-authorization key pair.
func NewClientKey() (*ecdh.PrivateKey, error) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("hiddenservice: new client key: %w", err)
	}
	return k, nil
}

// FormatClientPublicKey is pub in base32, as ClientAuthV3 takes it.
func FormatClientPublicKey(pub *ecdh.PublicKey) string {
	return b32.EncodeToString(pub.Bytes())
}

// FormatClientPrivateKey is priv in base32, as .auth_private files hold
// it.
func FormatClientPrivateKey(priv *ecdh.PrivateKey) string {
	return b32.EncodeToString(priv.Bytes())
}

// ParseClientPublicKey parses a base32 x25519 public key, in either
// case, bare or in tor's authorized_clients form
// "descriptor:x25519:KEY".
func ParseClientPublicKey(s string) (*ecdh.PublicKey, error) {
	b, err := decodeClientKey(s)
	if err != nil {
		return nil, err
	}
	return ecdh.X25519().NewPublicKey(b)
}

// ParseClientPrivateKey parses what FormatClientPrivateKey wrote.
func ParseClientPrivateKey(s string) (*ecdh.PrivateKey, error) {
	b, err := decodeClientKey(s)
	if err != nil {
		return nil, err
	}
	return ecdh.X25519().NewPrivateKey(b)
}

func decodeClientKey(s string) ([]byte, error) {
	k := strings.TrimSpace(s)
	k = strings.TrimPrefix(k, "descriptor:")
	k = strings.TrimPrefix(k, "x25519:")
	if len(k) != ClientKeyLen {
		return nil, fmt.Errorf("%w: %d characters, want %d of base32", ErrClientKey, len(k), ClientKeyLen)
	}
	b, err := b32.DecodeString(strings.ToUpper(k))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrClientKey, err)
	}
	return b, nil
}

// AuthPrivate is the line of a ClientOnionAuthDir file that lets a
// client tor decrypt the descriptor of the onion at addr:
// "<id>:descriptor:x25519:<base32 private key>".
func AuthPrivate(addr string, priv *ecdh.PrivateKey) string {
	return ID(addr) + ":descriptor:x25519:" + FormatClientPrivateKey(priv)
}

// ParseAuthPrivate parses an .auth_private line into the onion's
// address and the private key.
func ParseAuthPrivate(line string) (addr string, priv *ecdh.PrivateKey, err error) {
	parts := strings.Split(strings.TrimSpace(line), ":")
	if len(parts) != 4 || parts[1] != "descriptor" || parts[2] != "x25519" {
		return "", nil, fmt.Errorf("%w: want ID:descriptor:x25519:KEY", ErrClientKey)
	}
	pub, err := ParseAddress(parts[0])
	if err != nil {
		return "", nil, err
	}
	if priv, err = ParseClientPrivateKey(parts[3]); err != nil {
		return "", nil, err
	}
	return Address(pub), priv, nil
}

// WriteAuthPrivate writes dir/<id>.auth_private for the onion at addr,
// for a client tor whose ClientOnionAuthDir is dir, and returns its
// path. tor reads the directory when it starts (or on SIGHUP); a
// running tor is better told with ClientAuthAddCommand.
func WriteAuthPrivate(dir, addr string, priv *ecdh.PrivateKey) (string, error) {
	if _, err := ParseAddress(addr); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("hiddenservice: client auth dir: %w", err)
	}
	path := filepath.Join(dir, ID(addr)+".auth_private")
	if err := os.WriteFile(path, []byte(AuthPrivate(addr, priv)+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("hiddenservice: %w", err)
	}
	return path, nil
}

// ClientAuthAddCommand is the control command that gives a running
// client tor the key for the onion at addr (note base64 here, not
// base32). tor answers 250 (added), 251 (replaced an existing key) or
// 252 (added, and a cached descriptor was decrypted with it): all three
// are successes (see Controller.AddClientAuth).
func ClientAuthAddCommand(addr string, priv *ecdh.PrivateKey, opts ClientAuthOptions) (string, error) {
	if _, err := ParseAddress(addr); err != nil {
		return "", err
	}
	cmd := "ONION_CLIENT_AUTH_ADD " + ID(addr) + " x25519:" + base64.StdEncoding.EncodeToString(priv.Bytes())
	if opts.Name != "" {
		if !clientName().MatchString(opts.Name) {
			return "", fmt.Errorf("hiddenservice: client name %q: use 1-16 letters, digits, '-' or '_'", opts.Name)
		}
		cmd += " ClientName=" + opts.Name
	}
	if opts.Permanent {
		cmd += " Flags=Permanent"
	}
	return cmd, nil
}

// ClientAuthOptions are ONION_CLIENT_AUTH_ADD's options. The zero value
// adds a nameless key that lasts until tor exits or is sent NEWNYM.
type ClientAuthOptions struct {
	// Name is a nickname tor shows in ONION_CLIENT_AUTH_VIEW: 1 to 16
	// letters, digits, '-' or '_'. Empty means none.
	Name string
	// Permanent makes tor write the key into its ClientOnionAuthDir
	// (which it must have), so that it survives a restart and NEWNYM.
	// An ephemeral key (false) is forgotten by NEWNYM: a client that
	// sends NEWNYM must add it again.
	Permanent bool
}

var clientName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_-]{1,16}$`) })
