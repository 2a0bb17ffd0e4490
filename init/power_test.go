package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParsePower(t *testing.T) {
	for _, tc := range []struct {
		argv string // argv[0] and its words, split on spaces
		act  powerAction
		ok   bool
	}{
		// What OpenVZ's vzctl runs inside a container: stop, its fallback, restart.
		{"halt", powerActOff, true},
		{"init 0", powerActOff, true},
		{"reboot", powerActReboot, true},
		{"/sbin/halt", powerActOff, true},
		{"poweroff", powerActOff, true},
		{"poweroff -f", powerActOff, true},
		{"halt -p", powerActOff, true},
		{"halt --reboot", powerActReboot, true},
		{"reboot -p", powerActOff, true},
		{"reboot -f --no-wall", powerActReboot, true},
		{"halt -w", powerNothing, true},
		{"shutdown", powerActOff, true},
		{"shutdown -h now", powerActOff, true},
		{"shutdown -r now", powerActReboot, true},
		{"shutdown -P now", powerActOff, true},
		{"shutdown -rf now going down for a kernel", powerActReboot, true},
		{"shutdown -t 5 -h +0", powerActOff, true},
		{"shutdown --reboot now", powerActReboot, true},
		{"shutdown -k now", powerNothing, true},
		{"shutdown -c", powerNothing, true},
		{"telinit 0", powerActOff, true},
		{"telinit 6", powerActReboot, true},
		{"telinit q", powerNothing, true},
		{"init 6", powerActReboot, true},
		{"init u", powerNothing, true},
		{"init poweroff", powerActOff, true},
		{"init reboot", powerActReboot, true},
		{"init halt", powerActOff, true},
		{"/sbin/init reboot -f", powerActReboot, true},
		// Not power commands: init's own usage.
		{"init", powerNothing, false},
		{"init -z", powerNothing, false},
		{"init --help", powerNothing, false},
	} {
		f := strings.Fields(tc.argv)
		act, ok, err := parsePower(baseName(f[0]), f[1:])
		if act != tc.act || ok != tc.ok || err != nil {
			t.Errorf("parsePower(%q) = %v, %v, %v, want %v, %v, nil", tc.argv, act, ok, err, tc.act, tc.ok)
		}
	}
}

func TestParsePowerUsage(t *testing.T) {
	for _, argv := range []string{
		"halt --bogus", "reboot now", "poweroff -x",
		"shutdown -h +5", "shutdown -r 23:00", "shutdown -x now", "shutdown --bogus",
		"telinit", "telinit 3", "telinit 0 6", "init S", "init 1", "init 0 now", "init poweroff --bogus",
	} {
		f := strings.Fields(argv)
		_, ok, err := parsePower(baseName(f[0]), f[1:])
		var u *usageError
		if !ok || !errors.As(err, &u) || !strings.Contains(err.Error(), baseName(f[0])) && !strings.Contains(err.Error(), f[1]) {
			t.Errorf("parsePower(%q) = ok %v, err %v; want a usage error naming the command", argv, ok, err)
		}
	}
}

// run's exit codes for power commands that signal nothing (a test must
// not signal its machine's PID 1): 2 for usage, 0 for nothing to do.
func TestRunPowerUsage(t *testing.T) {
	for _, tc := range []struct {
		argv string
		code int
	}{
		{"halt --bogus", 2},
		{"shutdown -h +5", 2},
		{"init 3", 2},
		{"init", 2},
		{"init -z", 2},
		{"telinit q", 0},
		{"halt -w", 0},
	} {
		var stderr bytes.Buffer
		if got := run(strings.Fields(tc.argv), 4242, &stderr); got != tc.code || (tc.code == 2 && stderr.Len() == 0) {
			t.Errorf("run(%q) = %d (stderr %q), want %d", tc.argv, got, stderr.String(), tc.code)
		}
	}
}

func TestIgnoredArgs(t *testing.T) {
	got := ignoredArgs([]string{"-z", "      ", "single", "", "--bogus"})
	if strings.Join(got, ",") != "single,--bogus" {
		t.Errorf(`ignoredArgs(-z, "      ", single, "", --bogus) = %q, want [single --bogus]`, got)
	}
}

func baseName(s string) string { return s[strings.LastIndexByte(s, '/')+1:] }
