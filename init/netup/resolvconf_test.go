package netup

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func TestResolvConfRender(t *testing.T) {
	tests := []struct {
		in   resolvConf
		want string
	}{
		{resolvConf{origin: "static on eth0"},
			"# Written by allium netup (static on eth0).\n# No DNS servers were given.\n"},
		{resolvConf{origin: "static on eth0", dns: []netip.Addr{ip("1.1.1.1"), ip("9.9.9.9")}},
			"# Written by allium netup (static on eth0).\nnameserver 1.1.1.1\nnameserver 9.9.9.9\n"},
		{resolvConf{origin: "dhcp on eth0 from 10.0.2.2", dns: []netip.Addr{ip("10.0.2.3")}, search: "example.org"},
			"# Written by allium netup (dhcp on eth0 from 10.0.2.2).\nnameserver 10.0.2.3\nsearch example.org\n"},
		// The C libraries read three; the fourth is left out.
		{resolvConf{origin: "x", dns: []netip.Addr{ip("1.0.0.1"), ip("1.0.0.2"), ip("1.0.0.3"), ip("1.0.0.4")}},
			"# Written by allium netup (x).\nnameserver 1.0.0.1\nnameserver 1.0.0.2\nnameserver 1.0.0.3\n"},
	}
	for _, tt := range tests {
		if got := tt.in.render(); got != tt.want {
			t.Errorf("%+v.render() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(path, "new\n"); err != nil {
		t.Fatalf("writeFileAtomic(%q) = %v, want nil", path, err)
	}
	if got := readFile(t, path); got != "new\n" {
		t.Errorf("after writeFileAtomic, %s = %q, want %q", path, got, "new\n")
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("after writeFileAtomic, mode of %s = %v (%v), want 0644", path, fi.Mode(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("after writeFileAtomic, %s holds %d entries, want 1 (no temporary file left)", dir, len(ents))
	}
}

func TestValidDomain(t *testing.T) {
	tests := map[string]bool{
		"example.org":             true,
		"a-b.c0":                  true,
		"":                        false,
		"-x.org":                  false,
		"x.org\nnameserver 1":     false,
		"x.org options ndots":     false,
		"ex_ample.org":            false,
		string(make([]byte, 254)): false,
	}
	for in, want := range tests {
		if got := validDomain(in); got != want {
			t.Errorf("validDomain(%q) = %v, want %v", in, got, want)
		}
	}
}
