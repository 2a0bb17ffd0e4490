package hiddenservice

import (
	"crypto/ecdh"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ReadClientKeyFile reads a client's x25519 private key from a file
// holding it in base32 (FormatClientPrivateKey), as `cloud` keeps it.
func ReadClientKeyFile(path string) (*ecdh.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	priv, err := ParseClientPrivateKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return priv, nil
}

// LoadOrCreateClientKeyFile reads the client key at path, or makes one
// and writes it there (0600, atomically: a crash leaves no half key)
// when there is none.
func LoadOrCreateClientKeyFile(path string) (priv *ecdh.PrivateKey, created bool, err error) {
	priv, err = ReadClientKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return priv, false, err
	}
	if priv, err = NewClientKey(); err != nil {
		return nil, false, err
	}
	if err := writeFileAtomic(path, []byte(FormatClientPrivateKey(priv)+"\n")); err != nil {
		return nil, false, fmt.Errorf("hiddenservice: client key: %w", err)
	}
	return priv, true, nil
}

// writeFileAtomic writes a private (0600) file through a synced
// temporary file and a rename.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
