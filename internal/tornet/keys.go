package tornet

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// authorityKeys are the files tor-gencert makes; they go in the
// authority's DataDirectory/keys.
var authorityKeys = []string{"authority_identity_key", "authority_signing_key", "authority_certificate"}

// certMonths is the authority certificate's lifetime; a cached one is
// replaced when it has less than a month left.
const certMonths = 12

// authorityKeysTo puts the authority's v3 keys into keysDir, from the
// cache when it holds a certificate with a month left, else made afresh
// with tor-gencert (RSA-3072: 1 to 2 s) and cached. It returns the v3
// identity (the certificate's fingerprint).
func (n *Network) authorityKeysTo(ctx context.Context, keysDir string) (string, error) {
	if err := os.MkdirAll(keysDir, 0o700); err != nil {
		return "", err
	}
	if n.opts.KeyCache != "" && cacheValid(n.opts.KeyCache) {
		n.log.Debug("authority keys from the cache", "dir", n.opts.KeyCache)
		if err := copyFiles(n.opts.KeyCache, keysDir, authorityKeys); err != nil {
			return "", err
		}
	} else if err := n.gencert(ctx, keysDir); err != nil {
		return "", err
	}
	return certFingerprint(filepath.Join(keysDir, "authority_certificate"))
}

// gencert runs tor-gencert in keysDir, then caches its files. No -a:
// an address in the certificate would override the DirAuthority line's
// port in later runs.
func (n *Network) gencert(ctx context.Context, keysDir string) error {
	cmd := exec.CommandContext(ctx, n.opts.TorGencert, "--create-identity-key", "--passphrase-fd", "0",
		"-i", "authority_identity_key", "-s", "authority_signing_key", "-c", "authority_certificate",
		"-m", fmt.Sprint(certMonths))
	cmd.Dir = keysDir
	cmd.Stdin = strings.NewReader("tornet\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("tornet: tor-gencert: %w\n%s", err, out)
	}
	if n.opts.KeyCache != "" {
		if err := storeCache(keysDir, n.opts.KeyCache); err != nil {
			n.log.Warn("could not cache the authority keys", "err", err)
		}
	}
	return nil
}

// storeCache copies the keys into a fresh directory beside the cache
// and renames it into place, so a concurrent reader (another test
// package) sees the old cache or the new one, never half of one.
func storeCache(keysDir, cache string) error {
	if err := os.MkdirAll(filepath.Dir(cache), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(cache), filepath.Base(cache)+".new.*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := copyFiles(keysDir, tmp, authorityKeys); err != nil {
		return err
	}
	old := cache + ".old." + filepath.Base(tmp)
	if err := os.Rename(cache, old); err == nil {
		defer os.RemoveAll(old)
	}
	return os.Rename(tmp, cache)
}

// cacheValid reports whether dir holds the keys and a certificate that
// is valid for another month.
func cacheValid(dir string) bool {
	for _, f := range authorityKeys {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return false
		}
	}
	exp, err := certExpires(filepath.Join(dir, "authority_certificate"))
	return err == nil && time.Until(exp) > 30*24*time.Hour
}

func copyFiles(from, to string, names []string) error {
	for _, f := range names {
		b, err := os.ReadFile(filepath.Join(from, f))
		if err != nil {
			return fmt.Errorf("tornet: %w", err)
		}
		if err := os.WriteFile(filepath.Join(to, f), b, 0o600); err != nil {
			return fmt.Errorf("tornet: %w", err)
		}
	}
	return nil
}

// certField returns the value of the first line of the certificate
// that starts with key.
func certField(path, key string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("tornet: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+" "); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("tornet: %s: no %q line", path, key)
}

// certFingerprint is the authority's v3 identity, for v3ident=.
func certFingerprint(path string) (string, error) {
	fp, err := certField(path, "fingerprint")
	if err == nil && len(fp) != 40 {
		err = fmt.Errorf("tornet: %s: fingerprint %q", path, fp)
	}
	return fp, err
}

func certExpires(path string) (time.Time, error) {
	v, err := certField(path, "dir-key-expires")
	if err != nil {
		return time.Time{}, err
	}
	return time.Parse(time.DateTime, v)
}

// fingerprint makes nd's relay identity keys (tor --list-fingerprint,
// which only writes files) and reads its RSA fingerprint.
func (n *Network) fingerprint(ctx context.Context, nd *node) error {
	cmd := exec.CommandContext(ctx, n.opts.Tor, "--list-fingerprint", "--orport", "1",
		"--datadirectory", nd.dir, "-f", os.DevNull, "--defaults-torrc", os.DevNull,
		"--ignore-missing-torrc", "--hush")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("tornet: tor --list-fingerprint: %w\n%s", err, out)
	}
	os.Remove(filepath.Join(nd.dir, "lock"))
	b, err := os.ReadFile(filepath.Join(nd.dir, "fingerprint"))
	if err != nil {
		return fmt.Errorf("tornet: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 || len(f[1]) != 40 {
		return errors.New("tornet: " + nd.dir + "/fingerprint: want NICK FINGERPRINT")
	}
	nd.fp = f[1]
	return nil
}
