package api

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigDirPrecedence(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", "/xdg")
	t.Setenv("HOME", "/home/someone")
	t.Setenv("ALLIUM_CONFIG", "/from/env")
	tests := []struct{ flag, env, want string }{
		{"/from/flag", "/from/env", "/from/flag"},
		{"", "/from/env", "/from/env"},
		{"", "", "/xdg/allium"},
	}
	for _, tt := range tests {
		t.Setenv("ALLIUM_CONFIG", tt.env)
		got, err := ConfigDir(tt.flag)
		if err != nil || got != tt.want {
			t.Errorf("ConfigDir(%q) with ALLIUM_CONFIG=%q = %q, %v, want %q", tt.flag, tt.env, got, err, tt.want)
		}
	}
}

func TestConfigDirWithoutHome(t *testing.T) {
	t.Setenv("ALLIUM_CONFIG", "")
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("HOME", "")
	_, err := ConfigDir("")
	if err == nil || !strings.Contains(err.Error(), "ALLIUM_CONFIG") {
		t.Errorf("ConfigDir(\"\") with no home = %v, want an error pointing at $ALLIUM_CONFIG", err)
	}
}

func TestAliasRoundTrip(t *testing.T) {
	c := Config{Dir: t.TempDir()}
	web1 := Alias{Name: "web1", Address: "127.0.0.1:7707", NodeKey: FormatKey(publicKey(t, 1))}
	db := Alias{Name: "db.eu-1", Address: "[::1]:7707", NodeKey: FormatKey(publicKey(t, 2))}
	for _, a := range []Alias{web1, db} {
		if err := c.SaveAlias(a); err != nil {
			t.Fatalf("SaveAlias(%+v) = %v", a, err)
		}
	}
	if got, err := c.Alias("web1"); err != nil || got != web1 {
		t.Errorf("Alias(web1) = %+v, %v, want %+v", got, err, web1)
	}
	all, err := c.Aliases()
	if err != nil || len(all) != 2 || all[0] != db || all[1] != web1 {
		t.Errorf("Aliases() = %+v, %v, want [%+v %+v]", all, err, db, web1)
	}
	moved := web1
	moved.Address = "10.0.0.1:7707"
	if err := c.SaveAlias(moved); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Alias("web1"); got != moved {
		t.Errorf("Alias(web1) after replacing it = %+v, want %+v", got, moved)
	}
}

func TestAliasesOfAnEmptyDir(t *testing.T) {
	all, err := Config{Dir: filepath.Join(t.TempDir(), "nosuch")}.Aliases()
	if err != nil || len(all) != 0 {
		t.Errorf("Aliases() of a missing directory = %v, %v, want none and no error", all, err)
	}
}

func TestMissingAlias(t *testing.T) {
	c := Config{Dir: t.TempDir()}
	for _, name := range []string{"web2", "../etc/passwd", ""} {
		if _, err := c.Alias(name); !errors.Is(err, ErrNoAlias) {
			t.Errorf("Alias(%q) = %v, want ErrNoAlias", name, err)
		}
	}
}

func TestSaveAliasRefusesBadNames(t *testing.T) {
	c := Config{Dir: t.TempDir()}
	key := FormatKey(publicKey(t, 1))
	for _, name := range []string{"", ".hidden", "-flag", "a/b", "../up", "a b", "web1:7707", strings.Repeat("a", 64)} {
		if err := c.SaveAlias(Alias{Name: name, Address: "127.0.0.1:7707", NodeKey: key}); err == nil {
			t.Errorf("SaveAlias(name %q) = nil error, want it refused", name)
		}
	}
	if err := c.SaveAlias(Alias{Name: "web1", NodeKey: "ed25519:short"}); err == nil {
		t.Errorf("SaveAlias(a bad node key) = nil error, want it refused")
	}
	if ents, _ := os.ReadDir(filepath.Join(c.Dir, "nodes")); len(ents) != 0 {
		t.Errorf("refused aliases left %d files behind", len(ents))
	}
}

func TestBadAliasFileIsNamed(t *testing.T) {
	c := Config{Dir: t.TempDir()}
	path := filepath.Join(c.Dir, "nodes", "web1.json")
	if err := WriteFileAtomic(path, []byte(`{"name":"web1","node_key":"nope"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Alias("web1"); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Alias(web1) with a bad node key = %v, want an error naming %s", err, path)
	}
}
