package hiddenservice

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"allium/internal/keyfile"

	"github.com/cretz/bine/torutil"
	bineed "github.com/cretz/bine/torutil/ed25519"
)

// RFC 8032 section 7.1, TEST 1; tor's own test_hs_common.c checks the
// same public key's address.
const (
	rfc8032Seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	rfc8032Pub  = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
	rfc8032ID   = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid"
)

func rfc8032Key(t *testing.T) ed25519.PrivateKey {
	seed, err := hex.DecodeString(rfc8032Seed)
	if err != nil {
		t.Fatal(err)
	}
	return ed25519.NewKeyFromSeed(seed)
}

func TestAddressVector(t *testing.T) {
	priv := rfc8032Key(t)
	pub := priv.Public().(ed25519.PublicKey)
	if hex.EncodeToString(pub) != rfc8032Pub {
		t.Fatalf("public key of the RFC 8032 seed = %x, want %s", pub, rfc8032Pub)
	}
	if got := ServiceID(pub); got != rfc8032ID {
		t.Errorf("ServiceID(RFC 8032 key) = %s, want %s", got, rfc8032ID)
	}
	if got := KeyAddress(priv); got != rfc8032ID+".onion" {
		t.Errorf("KeyAddress(RFC 8032 key) = %s, want %s.onion", got, rfc8032ID)
	}
}

func TestParseAddress(t *testing.T) {
	pub, _ := hex.DecodeString(rfc8032Pub)
	for _, s := range []string{
		rfc8032ID,
		rfc8032ID + ".onion",
		strings.ToUpper(rfc8032ID) + ".ONION",
		"www." + rfc8032ID + ".onion.",
		// Real services: the Tor Project's and DuckDuckGo's.
		"2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion",
		"duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion",
	} {
		got, err := ParseAddress(s)
		if err != nil {
			t.Errorf("ParseAddress(%q) = %v", s, err)
			continue
		}
		if strings.Contains(s, rfc8032ID) && !bytes.Equal(got, pub) {
			t.Errorf("ParseAddress(%q) = %x, want %x", s, got, pub)
		}
		if Address(got) != ID(s)+".onion" {
			t.Errorf("Address(ParseAddress(%q)) = %s", s, Address(got))
		}
	}
}

func TestParseAddressRejects(t *testing.T) {
	for _, s := range []string{
		"",
		"example.com",
		rfc8032ID[:55] + "e.onion",            // one letter off: checksum
		rfc8032ID[:55] + ".onion",             // too short
		"1" + rfc8032ID[1:],                   // not base32
		"facebookcorewwwi.onion",              // v2
		strings.Repeat("a", AddressLen),       // checksum and version
		rfc8032ID[:54] + "ab" + "." + "onion", // version byte wrong
	} {
		if _, err := ParseAddress(s); !errors.Is(err, ErrAddress) {
			t.Errorf("ParseAddress(%q) = %v, want ErrAddress", s, err)
		}
	}
}

// The expanded key and the address agree with bine's, which tor
// accepts.
func TestExpandedKeyMatchesBine(t *testing.T) {
	for range 20 {
		priv, err := NewKey()
		if err != nil {
			t.Fatal(err)
		}
		x := ExpandedKey(priv)
		want := bineed.FromCryptoPrivateKey(priv).PrivateKey()
		if !bytes.Equal(x[:], want) {
			t.Fatalf("ExpandedKey = %x, bine's = %x", x, want)
		}
		if got, want := ServiceID(priv.Public().(ed25519.PublicKey)), torutil.OnionServiceIDFromPrivateKey(bineed.FromCryptoPrivateKey(priv)); got != want {
			t.Fatalf("ServiceID = %s, bine's = %s", got, want)
		}
	}
}

func TestKeyBlob(t *testing.T) {
	priv := rfc8032Key(t)
	blob, ok := strings.CutPrefix(KeyBlob(priv), "ED25519-V3:")
	if !ok {
		t.Fatalf("KeyBlob = %q, want ED25519-V3:...", KeyBlob(priv))
	}
	b, err := base64.StdEncoding.DecodeString(blob)
	x := ExpandedKey(priv)
	if err != nil || !bytes.Equal(b, x[:]) {
		t.Errorf("KeyBlob decodes to %x, %v, want the expanded key %x", b, err, x)
	}
}

// The seed is all that needs keeping: the same PEM gives the same
// address.
func TestMarshalKey(t *testing.T) {
	priv, _ := NewKey()
	pem, err := MarshalKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equal(priv) || KeyAddress(back) != KeyAddress(priv) {
		t.Errorf("ParseKey(MarshalKey(k)) = another key")
	}
	for _, bad := range []string{"", "-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n"} {
		_, err := ParseKey([]byte(bad))
		if !errors.Is(err, keyfile.ErrNotPEM) || !strings.HasPrefix(err.Error(), "hiddenservice: onion key: ") {
			t.Errorf("ParseKey(%q) = %v, want keyfile.ErrNotPEM under \"hiddenservice: onion key: \"", bad, err)
		}
	}
}

func TestIDAndIsOnion(t *testing.T) {
	for in, want := range map[string]string{
		"ABC.onion":     "abc",
		"x.abc.onion.":  "abc",
		"abc":           "abc",
		" abc.onion \n": "abc",
		"abc.onion:80":  "abc",
	} {
		if got := ID(in); got != want {
			t.Errorf("ID(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]bool{"a.onion": true, "A.ONION.": true, "onion.com": false, "1.2.3.4": false} {
		if got := IsOnion(in); got != want {
			t.Errorf("IsOnion(%q) = %v, want %v", in, got, want)
		}
	}
}
