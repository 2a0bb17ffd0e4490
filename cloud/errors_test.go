package main

import (
	"crypto/ed25519"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"allium/api"
)

func otherKey(t *testing.T) ed25519.PublicKey {
	t.Helper()
	k, err := api.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.Public().(ed25519.PublicKey)
}

func TestUsageErrors(t *testing.T) {
	f := newFleet(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{}, "missing command"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"--bogus", "info", "web1"}, "unknown flag: --bogus"},
		{[]string{"info"}, "info takes one HOST"},
		{[]string{"info", "web1", "web2"}, "got 2 arguments"},
		{[]string{"reboot", "web1", "--timeout", "soon"}, `invalid argument "soon"`},
		{[]string{"reboot", "web1", "--timeout", "0s"}, "want a positive duration"},
		{[]string{"nodes", "web1"}, `unknown command "web1"`},
		{[]string{"info", "web1", "--node-key", "nope"}, `--node-key: key "nope"`},
		{[]string{"info", f.addr}, "add --node-key ed25519:BASE64"},
	}
	for _, tt := range tests {
		code, _, errOut := f.cloud(t, tt.args...)
		if code != exitUsage {
			t.Errorf("cloud %s: exit %d, want %d", strings.Join(tt.args, " "), code, exitUsage)
		}
		wantContains(t, "stderr of cloud "+strings.Join(tt.args, " "), errOut, tt.want, "--help' for usage")
	}
	if f.backend.reboots.Load() != 0 {
		t.Errorf("a usage error rebooted the node")
	}
}

func TestUnknownAlias(t *testing.T) {
	f := newFleet(t)
	f.alias(t, "db1", "10.0.0.2:7707", otherKey(t))
	code, _, errOut := f.cloud(t, "info", "web2")
	if code != exitFailure {
		t.Errorf("cloud info web2: exit %d, want %d", code, exitFailure)
	}
	wantContains(t, "cloud info web2", errOut, `no alias "web2"`, "known aliases: db1, web1", "ADDRESS:PORT", "--node-key")
}

func TestAddressWithoutPort(t *testing.T) {
	_, _, errOut := runCloud(t, "--config", t.TempDir(), "info", "203.0.113.7")
	wantContains(t, "cloud info 203.0.113.7", errOut, "no aliases yet", "try 203.0.113.7:7707")
}

// TestWrongPinnedKey: the alias pins a key the node does not have.
func TestWrongPinnedKey(t *testing.T) {
	f := newFleet(t)
	pinned := otherKey(t)
	f.alias(t, "web1", f.addr, pinned)
	code, _, errOut := f.cloud(t, "reboot", "web1")
	if code != exitFailure {
		t.Errorf("cloud reboot web1 with a wrong pinned key: exit %d, want %d", code, exitFailure)
	}
	wantContains(t, "cloud reboot web1 with a wrong pinned key", errOut,
		"web1 ("+f.addr+") presented a different key than the alias web1 pins",
		"it presented "+api.Fingerprint(f.nodeKey),
		"the alias web1 pins "+api.Fingerprint(pinned),
		"not the node the alias web1 names", "rebuilt with a new key")
	if f.backend.reboots.Load() != 0 {
		t.Errorf("the node rebooted although cloud did not trust it")
	}
}

func TestWrongNodeKeyFlag(t *testing.T) {
	f := newFleet(t)
	_, _, errOut := f.cloud(t, "info", f.addr, "--node-key", api.FormatKey(otherKey(t)))
	wantContains(t, "cloud info ADDRESS:PORT --node-key WRONG", errOut,
		f.addr+" presented a different key than --node-key pins", "whose key --node-key gives")
}

func TestUnauthorized(t *testing.T) {
	f := newFleet(t)
	f.backend.authorized = otherKey(t)
	code, _, errOut := f.cloud(t, "poweroff", "web1")
	if code != exitFailure {
		t.Errorf("cloud poweroff web1 with an unknown client key: exit %d, want %d", code, exitFailure)
	}
	key, _, err := api.Config{Dir: f.dir}.LoadOrCreateClientKey()
	if err != nil {
		t.Fatal(err)
	}
	fp := api.Fingerprint(key.Public().(ed25519.PublicKey))
	wantContains(t, "cloud poweroff web1 with an unknown client key", errOut,
		"web1 refused this client's key "+fp+": it is not authorized on the node (your key: "+
			filepath.Join(f.dir, "client.key")+")")
	if f.backend.poweroffs.Load() != 0 {
		t.Errorf("an unauthorized client powered the node off")
	}
}

func TestClosedPort(t *testing.T) {
	f := newFleet(t)
	addr := closedPort(t)
	f.alias(t, "gone", addr, f.nodeKey)
	code, _, errOut := f.cloud(t, "info", "gone")
	if code != exitFailure {
		t.Errorf("cloud info gone: exit %d, want %d", code, exitFailure)
	}
	want := "cloud: cannot reach gone (" + addr + "): connection refused; is the node up and the port forwarded?\n"
	if errOut != want {
		t.Errorf("cloud info gone: stderr %q, want %q", errOut, want)
	}
}

func TestSilentNodeTimesOut(t *testing.T) {
	f := newFleet(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never speaks TLS
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f.alias(t, "mute", ln.Addr().String(), f.nodeKey)
	code, _, errOut := f.cloud(t, "--timeout", "200ms", "info", "mute")
	if code != exitFailure {
		t.Errorf("cloud info mute: exit %d, want %d", code, exitFailure)
	}
	wantContains(t, "cloud info mute", errOut, "cannot reach mute ("+ln.Addr().String()+"): no answer within 200ms")
}

func TestNoClientKey(t *testing.T) {
	dir := t.TempDir()
	a := api.Alias{Name: "web1", Address: "127.0.0.1:7707", NodeKey: api.FormatKey(otherKey(t))}
	if err := (api.Config{Dir: dir}).SaveAlias(a); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCloud(t, "--config", dir, "info", "web1")
	if code != exitFailure {
		t.Errorf("cloud info web1 without a client key: exit %d, want %d", code, exitFailure)
	}
	wantContains(t, "cloud info web1 without a client key", errOut,
		"no client key at "+filepath.Join(dir, "client.key"), "mkimage makes one", "--config")
}
