package hiddenservice

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"net"
	"strings"

	"allium/internal/keyfile"
)

// The onion service's identity is an ed25519 key. Allium stores its
// 32-byte seed (as PKCS#8 PEM, like the node's TLS key; see
// internal/keyfile), because the seed determines everything else:
//
//	seed ──ed25519──> public key ──Address──> xxxx.onion
//	seed ──SHA-512, clamp──> 64-byte expanded key ──base64──> ADD_ONION ED25519-V3:...
//
// tor itself keeps only the expanded key (hs_ed25519_secret_key holds it
// after a 32-byte header), from which the seed cannot be recovered.

// onionVersion is the version byte of a v3 address.
const onionVersion = 3

// AddressLen is the length of a v3 service ID: an address without
// ".onion".
const AddressLen = 56

// b32 is tor's base32: RFC 4648's alphabet, without padding. tor writes
// lower case in addresses and accepts either case everywhere.
var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewKey makes a new onion service key.
func NewKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("hiddenservice: new onion key: %w", err)
	}
	return priv, nil
}

// ExpandedKey is the 64-byte form of priv that tor uses: SHA-512 of the
// seed with the scalar half clamped as RFC 8032 says.
func ExpandedKey(priv ed25519.PrivateKey) [64]byte {
	h := sha512.Sum512(priv.Seed())
	h[0] &= 248
	h[31] &= 127
	h[31] |= 64
	return h
}

// KeyBlob is priv as ADD_ONION takes it: "ED25519-V3:" and the base64 of
// the expanded key.
func KeyBlob(priv ed25519.PrivateKey) string {
	x := ExpandedKey(priv)
	return "ED25519-V3:" + base64.StdEncoding.EncodeToString(x[:])
}

// ServiceID is the onion address of pub without ".onion": the base32 of
// pub, a two-byte checksum and the version, in lower case (rend-spec-v3
// section 6).
func ServiceID(pub ed25519.PublicKey) string {
	b := make([]byte, 0, 35)
	b = append(b, pub...)
	b = append(b, checksum(pub)...)
	b = append(b, onionVersion)
	return strings.ToLower(b32.EncodeToString(b))
}

// Address is ServiceID with ".onion".
func Address(pub ed25519.PublicKey) string { return ServiceID(pub) + ".onion" }

// KeyAddress is the onion address of priv.
func KeyAddress(priv ed25519.PrivateKey) string {
	return Address(priv.Public().(ed25519.PublicKey))
}

func checksum(pub []byte) []byte {
	h := sha3.New256()
	h.Write([]byte(".onion checksum"))
	h.Write(pub)
	h.Write([]byte{onionVersion})
	return h.Sum(nil)[:2]
}

// ParseAddress checks a v3 onion address, with or without ".onion" and
// in either case, and returns its public key. A subdomain
// (www.xxxx.onion) is accepted, as tor accepts it.
func ParseAddress(s string) (ed25519.PublicKey, error) {
	id := ID(s)
	if len(id) != AddressLen {
		return nil, fmt.Errorf("%w: %q: %d characters before .onion, want %d", ErrAddress, s, len(id), AddressLen)
	}
	b, err := b32.DecodeString(strings.ToUpper(id))
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrAddress, s, err)
	}
	pub, sum, ver := b[:32], b[32:34], b[34]
	if ver != onionVersion {
		return nil, fmt.Errorf("%w: %q: version %d, want 3", ErrAddress, s, ver)
	}
	if !bytes.Equal(sum, checksum(pub)) {
		return nil, fmt.Errorf("%w: %q: bad checksum (a typo?)", ErrAddress, s)
	}
	return ed25519.PublicKey(pub), nil
}

// ID is the service ID part of an address: lower case, without a
// port, ".onion" or any subdomain. It does not validate; see
// ParseAddress.
func ID(addr string) string {
	s := strings.TrimSpace(addr)
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	s = strings.ToLower(strings.TrimSuffix(s, "."))
	s = strings.TrimSuffix(s, ".onion")
	if i := strings.LastIndexByte(s, '.'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// IsOnion reports whether host (a name, without a port) ends in
// ".onion".
func IsOnion(host string) bool {
	return strings.HasSuffix(strings.ToLower(strings.TrimSuffix(host, ".")), ".onion")
}

// MarshalKey renders priv as PKCS#8 PEM (its 32-byte seed), the form
// mkimage bakes into the image and PID 1 reads back.
func MarshalKey(priv ed25519.PrivateKey) ([]byte, error) {
	b, err := keyfile.Marshal(priv)
	if err != nil {
		return nil, fmt.Errorf("hiddenservice: marshal onion key: %w", err)
	}
	return b, nil
}

// ParseKey parses what MarshalKey wrote.
func ParseKey(b []byte) (ed25519.PrivateKey, error) {
	priv, err := keyfile.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("hiddenservice: onion key: %w", err)
	}
	return priv, nil
}
