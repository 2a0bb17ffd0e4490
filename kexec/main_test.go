package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestActiveLockdown(t *testing.T) {
	for in, want := range map[string]string{
		"[none] integrity confidentiality\n": "",
		"none [integrity] confidentiality\n": "integrity",
		"none integrity [confidentiality]\n": "confidentiality",
		"":                                   "",
		"none [integrity":                    "",
	} {
		if got := activeLockdown(in); got != want {
			t.Errorf("activeLockdown(%q) = %q, want %q", in, got, want)
		}
	}
}

// Usage errors exit 2 and say what was wrong; nothing is loaded.
func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage:"},
		{[]string{"boot"}, 2, `unknown command "boot"`},
		{[]string{"load"}, 2, "load needs --kernel"},
		{[]string{"load", "--kernel", "k", "extra"}, 2, "load needs --kernel"},
		{[]string{"load", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"load", "--kernel", "/nonexistent/vmlinuz"}, 1, "no such file"},
		{[]string{"--help"}, 0, "kexec load --kernel FILE"},
	} {
		var out, errb bytes.Buffer
		code := run(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.want) {
			t.Errorf("kexec %q = %d, %q %q; want %d and %q", tc.args, code, out.String(), errb.String(), tc.code, tc.want)
		}
	}
}
