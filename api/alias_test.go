package api

import (
	"strings"
	"testing"
)

func TestAliasFieldsChecked(t *testing.T) {
	key := FormatKey(publicKey(t, 1))
	onion := strings.Repeat("a", 56) + ".onion"
	good := []Alias{
		{Name: "tcp", Address: "127.0.0.1:7707", NodeKey: key},
		{Name: "both", Address: "[::1]:7707", Onion: onion + ":7707", NodeKey: key},
		{Name: "only-onion", Onion: onion + ":7707", NodeKey: key},
		{Name: "address-is-onion", Address: onion + ":80", NodeKey: key},
	}
	c := Config{Dir: t.TempDir()}
	for _, a := range good {
		if err := c.SaveAlias(a); err != nil {
			t.Errorf("SaveAlias(%+v) = %v, want it saved", a, err)
		}
		if got, err := c.Alias(a.Name); err != nil || got != a {
			t.Errorf("Alias(%s) = %+v, %v, want %+v", a.Name, got, err, a)
		}
	}
	bad := []struct {
		a    Alias
		want string
	}{
		{Alias{Name: "nowhere", NodeKey: key}, "neither address nor onion"},
		{Alias{Name: "noport", Address: "127.0.0.1", NodeKey: key}, `address "127.0.0.1": want HOST:PORT`},
		{Alias{Name: "port0", Address: "127.0.0.1:0", NodeKey: key}, "port from 1 to 65535"},
		{Alias{Name: "short", Onion: "abc.onion:7707", NodeKey: key}, "56-character v3 ID"},
		{Alias{Name: "onionport", Onion: onion, NodeKey: key}, "want ID.onion:PORT"},
		{Alias{Name: "notonion", Onion: "127.0.0.1:7707", NodeKey: key}, "want ID.onion:PORT"},
	}
	for _, tt := range bad {
		err := c.SaveAlias(tt.a)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("SaveAlias(%+v) = %v, want an error containing %q", tt.a, err, tt.want)
		}
	}
}
