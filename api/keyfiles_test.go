package api

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func publicKey(t testing.TB, seed byte) ed25519.PublicKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
}

func TestFormatParseKeyRoundTrip(t *testing.T) {
	pub := publicKey(t, 1)
	s := FormatKey(pub)
	if !strings.HasPrefix(s, "ed25519:") {
		t.Errorf("FormatKey() = %q, want an ed25519: prefix", s)
	}
	for _, in := range []string{s, "  " + s + "\n"} {
		got, err := ParseKey(in)
		if err != nil || !got.Equal(pub) {
			t.Errorf("ParseKey(%q) = %x, %v, want %x", in, got, err, pub)
		}
	}
}

func TestParseKeyRejects(t *testing.T) {
	short := base64.StdEncoding.EncodeToString(make([]byte, 31))
	long := base64.StdEncoding.EncodeToString(make([]byte, 33))
	good := base64.StdEncoding.EncodeToString(make([]byte, 32))
	tests := []struct{ in, want string }{
		{"", "want \"ed25519:BASE64\""},
		{good, "want \"ed25519:BASE64\""},
		{"ssh-ed25519:" + good, "want \"ed25519:BASE64\""},
		{"ED25519:" + good, "want \"ed25519:BASE64\""},
		{"ed25519:", "0 bytes, want 32"},
		{"ed25519:" + short, "31 bytes, want 32"},
		{"ed25519:" + long, "33 bytes, want 32"},
		{"ed25519:not base64!", "illegal base64"},
		{"ed25519:" + strings.TrimRight(good, "="), "illegal base64"},
	}
	for _, tt := range tests {
		got, err := ParseKey(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseKey(%q) = %x, %v, want an error containing %q", tt.in, got, err, tt.want)
		}
	}
}

func TestFingerprint(t *testing.T) {
	a, b := Fingerprint(publicKey(t, 1)), Fingerprint(publicKey(t, 2))
	if !strings.HasPrefix(a, "SHA256:") || len(a) != len("SHA256:")+43 {
		t.Errorf("Fingerprint() = %q, want SHA256: and 43 base64 characters", a)
	}
	if a == b {
		t.Errorf("two keys have the same fingerprint %s", a)
	}
}

func TestParseAuthorizedKeys(t *testing.T) {
	k1, k2 := publicKey(t, 1), publicKey(t, 2)
	onion := bytes.Repeat([]byte{7}, OnionKeySize)
	in := "# clients of web1\n\n" +
		FormatKey(k1) + " alice laptop\n" +
		"   \t\n" +
		"  # an indented comment\n" +
		FormatKey(k2) + "\r\n" +
		FormatKey(k1) + "   bob  \n" +
		FormatKey(k2) + " " + FormatOnionKey(onion) + " carol's phone\n"
	got, err := ParseAuthorizedKeys(strings.NewReader(in))
	if err != nil {
		t.Fatalf("ParseAuthorizedKeys() = %v", err)
	}
	want := []AuthorizedKey{{k1, nil, "alice laptop"}, {k2, nil, ""}, {k1, nil, "bob"}, {k2, onion, "carol's phone"}}
	if len(got) != len(want) {
		t.Fatalf("ParseAuthorizedKeys() = %d keys, want %d", len(got), len(want))
	}
	for i := range want {
		if !got[i].Key.Equal(want[i].Key) || got[i].Name != want[i].Name || !bytes.Equal(got[i].Onion, want[i].Onion) {
			t.Errorf("key %d = %x %x %q, want %x %x %q", i, got[i].Key, got[i].Onion, got[i].Name, want[i].Key, want[i].Onion, want[i].Name)
		}
	}
	again, err := ParseAuthorizedKeys(bytes.NewReader(FormatAuthorizedKeys(got)))
	if err != nil || len(again) != len(got) || !bytes.Equal(again[3].Onion, onion) {
		t.Errorf("ParseAuthorizedKeys(FormatAuthorizedKeys()) = %d keys, %v, want %d", len(again), err, len(got))
	}
}

func TestOnionKeyForms(t *testing.T) {
	raw := bytes.Repeat([]byte{0xA5}, OnionKeySize)
	s := FormatOnionKey(raw)
	if len(s) != len("x25519:")+52 {
		t.Errorf("FormatOnionKey() = %q, want x25519: and 52 base32 characters", s)
	}
	for _, in := range []string{s, strings.ToLower(s), " " + s + "\n"} {
		if got, err := ParseOnionKey(in); err != nil || !bytes.Equal(got, raw) {
			t.Errorf("ParseOnionKey(%q) = %x, %v, want %x", in, got, err, raw)
		}
	}
	for _, bad := range []string{"", "x25519:", "ed25519:" + s[7:], s[:len(s)-4], s + "AAAA", "x25519:!!!!"} {
		if _, err := ParseOnionKey(bad); err == nil {
			t.Errorf("ParseOnionKey(%q) = nil error, want one", bad)
		}
	}
}

func TestParseAuthorizedKeysNamesTheBadLine(t *testing.T) {
	in := "# comment\n" + FormatKey(publicKey(t, 1)) + " ok\n\nssh-ed25519 AAAA bad\n"
	_, err := ParseAuthorizedKeys(strings.NewReader(in))
	if err == nil || !strings.Contains(err.Error(), "authorized_keys:4:") {
		t.Errorf("ParseAuthorizedKeys(a bad line 4) = %v, want an error naming authorized_keys:4", err)
	}
}

func FuzzParseAuthorizedKeys(f *testing.F) {
	k := FormatKey(publicKey(f, 1))
	f.Add("")
	f.Add("# only a comment\n")
	f.Add(k + " alice\n" + k + "\r\n\n# x\n")
	f.Add(k + "\t bob \n")
	f.Add("ed25519:AAAA name\n")
	f.Add("ed25519:" + strings.Repeat("A", 44) + " x\n")
	f.Fuzz(func(t *testing.T, in string) {
		keys, err := ParseAuthorizedKeys(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, k := range keys {
			if len(k.Key) != ed25519.PublicKeySize {
				t.Fatalf("ParseAuthorizedKeys(%q) returned a %d-byte key", in, len(k.Key))
			}
		}
		out := FormatAuthorizedKeys(keys)
		again, err := ParseAuthorizedKeys(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("ParseAuthorizedKeys(FormatAuthorizedKeys(%q)) = %v", out, err)
		}
		if len(again) != len(keys) {
			t.Fatalf("round trip of %q: %d keys, want %d", in, len(again), len(keys))
		}
		for i := range keys {
			if !again[i].Key.Equal(keys[i].Key) || again[i].Name != keys[i].Name {
				t.Fatalf("round trip of %q: key %d = %q, want %q", in, i, again[i].Name, keys[i].Name)
			}
		}
	})
}

func TestPrivateKeyRoundTrip(t *testing.T) {
	priv := newKey(t)
	b, err := MarshalPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParsePrivateKey(b)
	if err != nil || !got.Equal(priv) {
		t.Errorf("ParsePrivateKey(MarshalPrivateKey()) = %v, want the same key", err)
	}
	for _, bad := range []string{"", "not pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
		"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"} {
		if _, err := ParsePrivateKey([]byte(bad)); err == nil {
			t.Errorf("ParsePrivateKey(%q) = nil error", bad)
		}
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "client.key")
	first, created, err := LoadOrCreateKey(path)
	if err != nil || !created {
		t.Fatalf("LoadOrCreateKey(%s) = %v, created %v, want a new key", path, err, created)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	again, created, err := LoadOrCreateKey(path)
	if err != nil || created || !again.Equal(first) {
		t.Errorf("LoadOrCreateKey(%s) again = %v, created %v, want the same key reused", path, err, created)
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateKey(path); err == nil {
		t.Errorf("LoadOrCreateKey(%s holding garbage) = nil error, want it refused, not replaced", path)
	}
}
