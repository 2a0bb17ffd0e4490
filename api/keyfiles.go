package api

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"allium/internal/keyfile"
)

// Keys as text and in files: a TLS key as "ed25519:BASE64" and its
// fingerprint, an onion client-authorization key as "x25519:BASE32",
// authorized_keys, and private key files (PKCS#8 PEM, by
// internal/keyfile). The /v1/keys resource is in keys.go.

const keyPrefix = "ed25519:"

// FormatKey renders a public key as "ed25519:BASE64", the form used in
// authorized_keys, aliases and flags.
func FormatKey(pub ed25519.PublicKey) string {
	return keyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParseKey parses what FormatKey wrote.
func ParseKey(s string) (ed25519.PublicKey, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(s), keyPrefix)
	if !ok {
		return nil, fmt.Errorf("key %q: want \"ed25519:BASE64\"", s)
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", s, err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("key %q: %d bytes, want %d", s, len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// Fingerprint is a short, printable digest of a public key, as SSH shows
// them: "SHA256:BASE64".
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// NewKey makes a new ed25519 key pair.
func NewKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	return priv, err
}

// MarshalPrivateKey renders a private key as PKCS#8 PEM.
func MarshalPrivateKey(priv ed25519.PrivateKey) ([]byte, error) {
	return keyfile.Marshal(priv)
}

// ParsePrivateKey parses what MarshalPrivateKey wrote.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	return keyfile.Parse(b)
}

// ReadPrivateKey reads a PEM private key file.
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	priv, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return priv, nil
}

// LoadOrCreateKey reads the private key at path, or makes one and writes
// it there (mode 0600, atomically) when there is none.
func LoadOrCreateKey(path string) (priv ed25519.PrivateKey, created bool, err error) {
	priv, err = ReadPrivateKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return priv, false, err
	}
	if priv, err = NewKey(); err != nil {
		return nil, false, err
	}
	b, err := MarshalPrivateKey(priv)
	if err != nil {
		return nil, false, err
	}
	if err := WriteFileAtomic(path, b, 0o600); err != nil {
		return nil, false, err
	}
	return priv, true, nil
}

// WriteFileAtomic writes data to a temporary file beside path, syncs it
// and renames it into place, so a crash leaves the old file or the new
// one, never half of one.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// AuthorizedKey is a client the node accepts: its TLS key, the x25519
// key tor's client authorization needs to reach the onion (nil when the
// client only uses TCP), and a name for people.
type AuthorizedKey struct {
	Key   ed25519.PublicKey
	Onion []byte // raw x25519 public key, OnionKeySize bytes, or nil
	Name  string
}

const onionKeyPrefix = "x25519:"

// OnionKeySize is the size of a raw x25519 public key.
const OnionKeySize = 32

// onionB32 is tor's spelling of x25519 keys: RFC 4648 base32 without
// padding (52 characters for 32 bytes).
var onionB32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// FormatOnionKey renders a raw x25519 public key as "x25519:BASE32", the
// form used in authorized_keys and flags. BASE32 is what tor's
// ClientAuthV3 takes.
func FormatOnionKey(pub []byte) string {
	return onionKeyPrefix + onionB32.EncodeToString(pub)
}

// ParseOnionKey parses what FormatOnionKey wrote (BASE32 in either case).
func ParseOnionKey(s string) ([]byte, error) {
	b32, ok := strings.CutPrefix(strings.TrimSpace(s), onionKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("onion key %q: want \"x25519:BASE32\"", s)
	}
	b, err := onionB32.DecodeString(strings.ToUpper(b32))
	if err != nil {
		return nil, fmt.Errorf("onion key %q: %w", s, err)
	}
	if len(b) != OnionKeySize {
		return nil, fmt.Errorf("onion key %q: %d bytes, want %d", s, len(b), OnionKeySize)
	}
	return b, nil
}

// ParseAuthorizedKeys reads lines of "ed25519:BASE64 [x25519:BASE32]
// NAME"; blank lines and lines starting with # are skipped.
func ParseAuthorizedKeys(r io.Reader) ([]AuthorizedKey, error) {
	var keys []AuthorizedKey
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, rest, _ := strings.Cut(line, " ")
		pub, err := ParseKey(k)
		if err != nil {
			return nil, fmt.Errorf("authorized_keys:%d: %w", n, err)
		}
		ak := AuthorizedKey{Key: pub}
		rest = strings.TrimSpace(rest)
		if strings.HasPrefix(rest, onionKeyPrefix) {
			var ok string
			ok, rest, _ = strings.Cut(rest, " ")
			if ak.Onion, err = ParseOnionKey(ok); err != nil {
				return nil, fmt.Errorf("authorized_keys:%d: %w", n, err)
			}
		}
		ak.Name = strings.TrimSpace(rest)
		keys = append(keys, ak)
	}
	return keys, sc.Err()
}

// FormatAuthorizedKeys renders keys as ParseAuthorizedKeys reads them.
func FormatAuthorizedKeys(keys []AuthorizedKey) []byte {
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(FormatKey(k.Key))
		if k.Onion != nil {
			b.WriteString(" " + FormatOnionKey(k.Onion))
		}
		fmt.Fprintf(&b, " %s\n", k.Name)
	}
	return []byte(b.String())
}
