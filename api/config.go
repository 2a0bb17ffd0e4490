package api

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Config is the client's configuration directory:
//
//	DIR/client.key        the client's ed25519 key (PKCS#8 PEM, 0600)
//	DIR/client.onion      the client's x25519 key for onion client
//	                      authorization (base32, as tor spells it; 0600)
//	DIR/nodes/NAME.json   one Alias per node
type Config struct {
	Dir string
}

// ConfigDir picks the configuration directory: flag if set, else
// $ALLIUM_CONFIG, else "allium" in the user's configuration directory
// (~/.config/allium on Linux, ~/Library/Application Support/allium on
// macOS).
func ConfigDir(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if d := os.Getenv("ALLIUM_CONFIG"); d != "" {
		return d, nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no configuration directory: %w (set $ALLIUM_CONFIG or pass --config)", err)
	}
	return filepath.Join(d, "allium"), nil
}

// Alias names a node: where it is and which key it must present.
type Alias struct {
	Name string `json:"name"`
	// Address is HOST:PORT of the node's TLS port; it may be a
	// .onion address too. Empty when the node is only reachable
	// through its onion.
	Address string `json:"address,omitempty"`
	// Onion is the node's onion service, ID.onion:PORT; empty for a
	// node without one.
	Onion string `json:"onion,omitempty"`
	// NodeKey is the node's TLS key as FormatKey renders it.
	NodeKey string `json:"node_key"`
	// Bundle is the install.sh mkimage wrote for the node, which
	// `cloud install` copies to the machine it installs on.
	Bundle string `json:"bundle,omitempty"`
}

// onionHost is a v3 onion address: 56 characters of base32 and
// ".onion".
var onionHost = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z2-7]{56}\.onion$`) })

// check says what is wrong with an alias's fields, naming the field.
func (a Alias) check() error {
	if _, err := ParseKey(a.NodeKey); err != nil {
		return fmt.Errorf("node_key: %w", err)
	}
	if a.Address == "" && a.Onion == "" {
		return errors.New("neither address nor onion is set: nothing says where the node is")
	}
	if a.Address != "" {
		if err := checkHostPort(a.Address); err != nil {
			return fmt.Errorf("address %q: %w", a.Address, err)
		}
	}
	if a.Onion != "" {
		host, _, _ := strings.Cut(a.Onion, ":")
		if err := checkHostPort(a.Onion); err != nil || !onionHost().MatchString(strings.ToLower(host)) {
			return fmt.Errorf("onion %q: want ID.onion:PORT, with the 56-character v3 ID", a.Onion)
		}
	}
	return nil
}

// checkHostPort checks a HOST:PORT with a port from 1 to 65535.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("want HOST:PORT")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 || host == "" {
		return errors.New("want HOST:PORT with a port from 1 to 65535")
	}
	return nil
}

var aliasName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`) })

// ValidName reports whether name can be an alias (and a node name).
func ValidName(name string) error {
	if !aliasName().MatchString(name) {
		return fmt.Errorf("name %q: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// KeyPath is where the client's key lives: DIR/client.key.
func (c Config) KeyPath() string { return filepath.Join(c.Dir, "client.key") }

// OnionKeyPath is where the client's x25519 onion client-authorization
// key lives: DIR/client.onion.
func (c Config) OnionKeyPath() string { return filepath.Join(c.Dir, "client.onion") }

func (c Config) aliasPath(name string) string {
	return filepath.Join(c.Dir, "nodes", name+".json")
}

// ClientKey reads the client's key.
func (c Config) ClientKey() (ed25519.PrivateKey, error) {
	k, err := ReadPrivateKey(c.KeyPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no client key at %s: mkimage makes one when it builds an appliance", c.KeyPath())
	}
	return k, err
}

// LoadOrCreateClientKey reads the client's key, making it on first use.
func (c Config) LoadOrCreateClientKey() (ed25519.PrivateKey, bool, error) {
	return LoadOrCreateKey(c.KeyPath())
}

// Alias reads the alias name.
func (c Config) Alias(name string) (Alias, error) {
	if ValidName(name) != nil {
		return Alias{}, fmt.Errorf("%w %q", ErrNoAlias, name)
	}
	b, err := os.ReadFile(c.aliasPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return Alias{}, fmt.Errorf("%w %q in %s", ErrNoAlias, name, c.Dir)
	}
	if err != nil {
		return Alias{}, err
	}
	var a Alias
	if err := json.Unmarshal(b, &a); err != nil {
		return Alias{}, fmt.Errorf("%s: %w", c.aliasPath(name), err)
	}
	if err := a.check(); err != nil {
		return Alias{}, fmt.Errorf("%s: %w", c.aliasPath(name), err)
	}
	return a, nil
}

// SaveAlias writes a, replacing any alias of the same name.
func (c Config) SaveAlias(a Alias) error {
	if err := ValidName(a.Name); err != nil {
		return err
	}
	if err := a.check(); err != nil {
		return fmt.Errorf("alias %s: %w", a.Name, err)
	}
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(c.aliasPath(a.Name), append(b, '\n'), 0o600)
}

// Aliases lists every alias, by name.
func (c Config) Aliases() ([]Alias, error) {
	ents, err := os.ReadDir(filepath.Join(c.Dir, "nodes"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Alias
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(name, ".") {
			continue
		}
		a, err := c.Alias(name)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
