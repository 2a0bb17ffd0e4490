package hiddenservice

import (
	"crypto/ecdh"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// RFC 7748 section 6.1: Alice's key pair.
const (
	rfc7748Priv = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
	rfc7748Pub  = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
)

func rfc7748Key(t *testing.T) *ecdh.PrivateKey {
	b, _ := hex.DecodeString(rfc7748Priv)
	k, err := ecdh.X25519().NewPrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestClientKeyEncodings(t *testing.T) {
	priv := rfc7748Key(t)
	if hex.EncodeToString(priv.PublicKey().Bytes()) != rfc7748Pub {
		t.Fatalf("RFC 7748 public key = %x, want %s", priv.PublicKey().Bytes(), rfc7748Pub)
	}
	pubS, privS := FormatClientPublicKey(priv.PublicKey()), FormatClientPrivateKey(priv)
	const wantPub = "QUQPACMJGCTVI5ELPXOLIPXXLIG36OQNEY4BV5HLUSUY5KU3JZVA"
	if pubS != wantPub {
		t.Errorf("FormatClientPublicKey = %s, want %s", pubS, wantPub)
	}
	if len(pubS) != ClientKeyLen || len(privS) != ClientKeyLen || strings.Contains(pubS+privS, "=") {
		t.Errorf("keys %q, %q: want %d base32 characters without padding", pubS, privS, ClientKeyLen)
	}
	for _, s := range []string{pubS, strings.ToLower(pubS), "descriptor:x25519:" + pubS, "x25519:" + pubS + "\n"} {
		pub, err := ParseClientPublicKey(s)
		if err != nil || !pub.Equal(priv.PublicKey()) {
			t.Errorf("ParseClientPublicKey(%q) = %v, %v", s, pub, err)
		}
	}
	back, err := ParseClientPrivateKey(privS)
	if err != nil || !back.Equal(priv) {
		t.Errorf("ParseClientPrivateKey(%q) = %v, %v", privS, back, err)
	}
}

func TestParseClientKeyRejects(t *testing.T) {
	for _, s := range []string{"", "AAAA", strings.Repeat("A", 51), strings.Repeat("1", 52), "ed25519:" + strings.Repeat("A", 52)} {
		if _, err := ParseClientPublicKey(s); !errors.Is(err, ErrClientKey) {
			t.Errorf("ParseClientPublicKey(%q) = %v, want ErrClientKey", s, err)
		}
	}
}

func TestAuthPrivate(t *testing.T) {
	priv := rfc7748Key(t)
	addr := rfc8032ID + ".onion"
	line := AuthPrivate(addr, priv)
	want := rfc8032ID + ":descriptor:x25519:" + FormatClientPrivateKey(priv)
	if line != want {
		t.Errorf("AuthPrivate = %q, want %q", line, want)
	}
	gotAddr, gotKey, err := ParseAuthPrivate(line + "\n")
	if err != nil || gotAddr != addr || !gotKey.Equal(priv) {
		t.Errorf("ParseAuthPrivate(AuthPrivate) = %s, %v, %v", gotAddr, gotKey, err)
	}
	for _, bad := range []string{"", rfc8032ID + ":descriptor:ed25519:" + FormatClientPrivateKey(priv), "x:descriptor:x25519:" + FormatClientPrivateKey(priv)} {
		if _, _, err := ParseAuthPrivate(bad); err == nil {
			t.Errorf("ParseAuthPrivate(%q) succeeded", bad)
		}
	}
}

func TestWriteAuthPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "onion_auth")
	priv := rfc7748Key(t)
	path, err := WriteAuthPrivate(dir, rfc8032ID+".onion", priv)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != rfc8032ID+".auth_private" {
		t.Errorf("WriteAuthPrivate wrote %s, want %s.auth_private", path, rfc8032ID)
	}
	b, _ := os.ReadFile(path)
	if string(b) != AuthPrivate(rfc8032ID, priv)+"\n" {
		t.Errorf("file holds %q", b)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %v, %v, want 0600", fi.Mode(), err)
	}
	if _, err := WriteAuthPrivate(dir, "nope.onion", priv); !errors.Is(err, ErrAddress) {
		t.Errorf("WriteAuthPrivate(nope.onion) = %v, want ErrAddress", err)
	}
}

func TestClientAuthAddCommand(t *testing.T) {
	priv := rfc7748Key(t)
	const key = " x25519:dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo="
	for opts, want := range map[ClientAuthOptions]string{
		{}:                            "ONION_CLIENT_AUTH_ADD " + rfc8032ID + key,
		{Name: "laptop"}:              "ONION_CLIENT_AUTH_ADD " + rfc8032ID + key + " ClientName=laptop",
		{Name: "ci", Permanent: true}: "ONION_CLIENT_AUTH_ADD " + rfc8032ID + key + " ClientName=ci Flags=Permanent",
		{Permanent: true}:             "ONION_CLIENT_AUTH_ADD " + rfc8032ID + key + " Flags=Permanent",
	} {
		got, err := ClientAuthAddCommand(rfc8032ID+".onion", priv, opts)
		if err != nil || got != want {
			t.Errorf("ClientAuthAddCommand(%+v) = %q, %v, want %q", opts, got, err, want)
		}
	}
	if _, err := ClientAuthAddCommand(rfc8032ID, priv, ClientAuthOptions{Name: "two words"}); err == nil {
		t.Error("ClientAuthAddCommand accepted a name with a space")
	}
	if _, err := ClientAuthAddCommand("bad.onion", priv, ClientAuthOptions{}); !errors.Is(err, ErrAddress) {
		t.Errorf("ClientAuthAddCommand(bad.onion) = %v, want ErrAddress", err)
	}
}
