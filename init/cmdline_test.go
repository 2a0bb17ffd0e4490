package main

import (
	"strings"
	"testing"
)

func TestParseCmdline(t *testing.T) {
	c := parseCmdline(`console=ttyS0 panic=-1 quiet allium.data=LABEL=allium-data ip=dhcp x="a b=c" ip=10.0.0.2::10.0.0.1:255.255.255.0::eth0:off` + "\n")
	want := map[string]string{
		"console": "ttyS0", "panic": "-1", "quiet": "",
		"allium.data": "LABEL=allium-data", "x": "a b=c",
		"ip": "10.0.0.2::10.0.0.1:255.255.255.0::eth0:off",
	}
	for k, v := range want {
		if got, ok := c[k]; !ok || got != v {
			t.Errorf("parseCmdline(...)[%q] = %q (present %v), want %q", k, got, ok, v)
		}
	}
	if len(c) != len(want) {
		t.Errorf("parseCmdline(...) has %d keys, want %d: %v", len(c), len(want), c)
	}
}

func FuzzParseCmdline(f *testing.F) {
	f.Add(`console=ttyS0 allium.data="LABEL=a b" ip=dhcp`)
	f.Add(`"unterminated =x`)
	f.Fuzz(func(t *testing.T, s string) {
		c := parseCmdline(s)
		for k, v := range c {
			if k == "" || strings.ContainsAny(k, "\"=") {
				t.Errorf("parseCmdline(%q): bad key %q", s, k)
			}
			if strings.Contains(v, `"`) {
				t.Errorf("parseCmdline(%q)[%q] = %q still holds a quote", s, k, v)
			}
		}
	})
}
