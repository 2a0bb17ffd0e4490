package keyfile

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// blockType is the PEM type of a PKCS#8 private key (RFC 7468).
const blockType = "PRIVATE KEY"

// Marshal renders priv as PKCS#8 PEM. PKCS#8 keeps only the 32-byte
// seed, from which Parse derives the rest.
func Marshal(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), nil
}

// Parse parses what Marshal wrote: the first PEM block of b, which must
// be a "PRIVATE KEY" holding an ed25519 key. It returns ErrNotPEM for
// anything else in that place, and an error wrapping ErrNotEd25519 for
// a key of another kind.
func Parse(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != blockType {
		return nil, ErrNotPEM
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, %w", k, ErrNotEd25519)
	}
	return priv, nil
}
