package keyfile

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
)

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func TestRoundTrip(t *testing.T) {
	priv := newKey(t)
	b, err := Marshal(priv)
	if err != nil {
		t.Fatalf("Marshal() = %v", err)
	}
	if !bytes.HasPrefix(b, []byte("-----BEGIN PRIVATE KEY-----\n")) {
		t.Errorf("Marshal() = %q, want a PEM \"PRIVATE KEY\" block", b)
	}
	got, err := Parse(b)
	if err != nil || !got.Equal(priv) {
		t.Fatalf("Parse(Marshal(k)) = %x, %v; want k", got, err)
	}
	again, err := Marshal(got)
	if err != nil || !bytes.Equal(again, b) {
		t.Errorf("Marshal(Parse(b)) = %q, %v; want b again, byte for byte", again, err)
	}
}

// The seed is all PKCS#8 keeps: a key made from the same seed marshals
// to the same bytes, so a stored key names one identity.
func TestMarshalKeepsTheSeed(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	a, err := Marshal(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := Parse(a)
	if err != nil || !bytes.Equal(priv.Seed(), seed) {
		t.Errorf("Parse(Marshal(key of seed 7...)) has seed %x, %v; want %x", priv.Seed(), err, seed)
	}
}

func TestWrongPEMType(t *testing.T) {
	b, err := Marshal(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	for _, typ := range []string{"PUBLIC KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"} {
		other := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: blk.Bytes})
		if _, err := Parse(other); !errors.Is(err, ErrNotPEM) {
			t.Errorf("Parse(the key in a %q block) = %v, want ErrNotPEM", typ, err)
		}
	}
}

func TestNotEd25519(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if !errors.Is(err, ErrNotEd25519) {
		t.Fatalf("Parse(an ECDSA key) = %v, want ErrNotEd25519", err)
	}
	if want := "a *ecdsa.PrivateKey, want an ed25519 key"; err.Error() != want {
		t.Errorf("Parse(an ECDSA key) = %q, want %q", err, want)
	}
}

func TestGarbage(t *testing.T) {
	for _, bad := range []string{"", "garbage", "-----BEGIN PRIVATE KEY-----\n", "\x00\xff"} {
		if k, err := Parse([]byte(bad)); !errors.Is(err, ErrNotPEM) || k != nil {
			t.Errorf("Parse(%q) = %x, %v; want ErrNotPEM", bad, k, err)
		}
	}
	corrupt := "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
	k, err := Parse([]byte(corrupt))
	if err == nil || k != nil || errors.Is(err, ErrNotPEM) || errors.Is(err, ErrNotEd25519) {
		t.Errorf("Parse(a PRIVATE KEY block of garbage) = %x, %v; want the PKCS#8 parse error", k, err)
	}
}

// FuzzParse: Parse never panics, and what it accepts marshals back to
// a key it parses the same.
func FuzzParse(f *testing.F) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	good, _ := Marshal(priv)
	f.Add(good)
	f.Add([]byte(strings.Replace(string(good), "PRIVATE KEY", "PUBLIC KEY", 2)))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := Parse(b)
		if err != nil {
			return
		}
		again, err := Marshal(k)
		if err != nil {
			t.Fatalf("Marshal(Parse(%q)) = %v", b, err)
		}
		if back, err := Parse(again); err != nil || !back.Equal(k) {
			t.Fatalf("Parse(Marshal(Parse(%q))) = %v, want the same key", b, err)
		}
	})
}
