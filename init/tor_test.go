package main

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"allium/api"
	"allium/hiddenservice"
	"allium/rootfs"
)

// TestTorMissingIsReported: a node that cannot run its onion says why in
// GET /v1/node, and runs no tor.
func TestTorMissingIsReported(t *testing.T) {
	onionKey, _ := hiddenservice.NewKey()
	pem, _ := hiddenservice.MarshalKey(onionKey)
	x, _ := hiddenservice.NewClientKey()
	tests := []struct {
		name  string
		setup func(r *testRoot)
		want  string
	}{
		{"no tor binary", func(r *testRoot) {
			r.write(rootfs.NodeConfigFile, `{"name":"web1","tor":{"exe":"/no/tor"}}`)
		}, "no tor binary at /no/tor"},
		{"no onion key", func(r *testRoot) {
			r.write(rootfs.NodeConfigFile, `{"name":"web1","tor":{"exe":"/bin/tor"}}`)
			r.write("bin/tor", "")
		}, "no onion key at"},
		{"no client has an x25519 key", func(r *testRoot) {
			r.write(rootfs.NodeConfigFile, `{"name":"web1","tor":{"exe":"/bin/tor"}}`)
			r.write("bin/tor", "")
			r.write(rootfs.OnionKeyFile, string(pem))
		}, "no authorized client has an x25519 key"},
		{"a broken onion key", func(r *testRoot) {
			r.write(rootfs.NodeConfigFile, `{"name":"web1","tor":{"exe":"/bin/tor"}}`)
			r.write("bin/tor", "")
			r.write(rootfs.OnionKeyFile, "not a key")
			k, _ := api.NewKey()
			r.write(rootfs.AuthorizedKeysFile, string(api.FormatAuthorizedKeys([]api.AuthorizedKey{
				{Key: k.Public().(ed25519.PublicKey), Onion: x.PublicKey().Bytes(), Name: "admin"}})))
		}, "onion key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRoot(t, "console=ttyS0\n")
			tc.setup(r)
			n, _, _, logs := bootNode(t, r, []string{"-z"})
			n.api, _ = api.NewServer(n, mustKey(t), n.log)
			n.startTor()
			got, err := n.Node(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if got.Tor == nil || got.Tor.State != "missing" || !strings.Contains(got.Tor.LastError, tc.want) {
				t.Errorf("Node().Tor = %+v, want state missing and an error with %q", got.Tor, tc.want)
			}
			if !strings.Contains(logs.String(), tc.want) {
				t.Errorf("the log does not say %q:\n%s", tc.want, logs)
			}
			if _, err := os.Stat(filepath.Join(r.dir, rootfs.TorDataDir)); err == nil {
				t.Errorf("a tor data directory was made for a tor that cannot run")
			}
		})
	}
}

func TestTorOffIsNotReported(t *testing.T) {
	r := newTestRoot(t, "console=ttyS0\n")
	r.write(rootfs.NodeConfigFile, `{"name":"web1","tor":{"off":true}}`)
	n, _, _, _ := bootNode(t, r, []string{"-z"})
	n.api, _ = api.NewServer(n, mustKey(t), n.log)
	n.startTor()
	if got, _ := n.Node(t.Context()); got.Tor != nil {
		t.Errorf("Node().Tor = %+v with tor off in node.json, want nil", got.Tor)
	}
}

func mustKey(t *testing.T) ed25519.PrivateKey {
	k, err := api.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestTorUser(t *testing.T) {
	for _, tc := range []struct {
		configured string
		users      []string
		want       string
	}{
		{"tor", []string{"allium-tor", "debian-tor"}, "tor"},
		{"", []string{"allium-tor", "debian-tor"}, "allium-tor"},
		{"", []string{"debian-tor"}, "debian-tor"},
		{"", nil, "allium-tor"},
	} {
		cfg := rootfs.NodeConfig{Tor: rootfs.TorConfig{User: tc.configured}}
		got := torUser(cfg, func(u string) bool { return slices.Contains(tc.users, u) })
		if got != tc.want {
			t.Errorf("torUser(tor.user %q, users %q) = %q, want %q", tc.configured, tc.users, got, tc.want)
		}
	}
}
