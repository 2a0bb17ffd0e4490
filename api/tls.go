package api

import (
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Both ends authenticate by key, not by certificate chain: each side
// presents a self-signed certificate made from its ed25519 key, and the
// other side compares the key with the one it has pinned. Validity dates
// are ignored, so a node whose clock is wrong can still be reached.

// certificate makes a self-signed certificate for key.
func certificate(key ed25519.PrivateKey) (tls.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "allium"},
		NotBefore:    time.Unix(0, 0),
		NotAfter:     time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("self-signed certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// peerKey returns the ed25519 key of the certificate a peer presented.
func peerKey(rawCerts [][]byte) (ed25519.PublicKey, error) {
	if len(rawCerts) == 0 {
		return nil, errors.New("peer sent no certificate")
	}
	c, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return nil, fmt.Errorf("peer certificate: %w", err)
	}
	pub, ok := c.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("peer key is %T, want ed25519", c.PublicKey)
	}
	return pub, nil
}

// ServerTLS is the node's TLS configuration: TLS 1.3 only, and a client
// certificate is required. Which client keys are authorized is checked
// per request (see Server), so that an unknown client gets a 401 that
// says why instead of a bare handshake failure.
func ServerTLS(key ed25519.PrivateKey) (*tls.Config, error) {
	cert, err := certificate(key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			_, err := peerKey(raw)
			return err
		},
	}, nil
}

// ClientTLS is the client's TLS configuration: it presents key and
// accepts only a node whose key is node.
func ClientTLS(key ed25519.PrivateKey, node ed25519.PublicKey) (*tls.Config, error) {
	cert, err := certificate(key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		// The chain is not verified: VerifyPeerCertificate pins the key.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			pub, err := peerKey(raw)
			if err != nil {
				return err
			}
			if !bytes.Equal(pub, node) {
				return fmt.Errorf("%w: it presented %s, pinned %s", ErrNodeKey, Fingerprint(pub), Fingerprint(node))
			}
			return nil
		},
	}, nil
}
