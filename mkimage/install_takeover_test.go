package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSysvinit stands for sysvinit's /sbin/init: it has the string
// install.sh knows it by, and as telinit (not PID 1) notes the runlevel
// it was asked for in the tree's /switched.
const fakeSysvinit = "#!/bin/sh\n# INIT_VERSION=sysvinit-3.06\necho \"init $*\" >>\"$ALLIUM_INSTALL_ROOT/switched\"\n"

// sysvinitCT is an OpenVZ container running sysvinit, with halt and
// reboot (sysvinit's) and no poweroff, shutdown or telinit.
func sysvinitCT() *machine {
	return openvz().with(func(m *machine) {
		m.files["sbin/init"] = fakeSysvinit
		m.files["sbin/halt"] = "sysvinit halt"
		m.files["etc/passwd"] = "root:x:0:0:root:/root:/bin/sh\n"
		m.files["etc/group"] = "root:x:0:\n"
		m.links["sbin/reboot"] = "halt"
	})
}

// runTakeover runs install.sh --yes against m's tree and returns it.
func runTakeover(t *testing.T, sh []string, script string, m *machine, root string, args ...string) (int, string) {
	t.Helper()
	// The tree's own sbin/init is a script; it must be executable.
	for _, n := range []string{"sbin/init", "sbin/halt"} {
		os.Chmod(filepath.Join(root, n), 0o755)
	}
	return runInstall(t, sh, script, root, m, append([]string{"--yes"}, args...)...)
}

func readTree(t *testing.T, root, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		t.Errorf("after the takeover: %v", err)
	}
	return string(b)
}

func TestInstallTakeover(t *testing.T) {
	script := bundle(t)
	init := readPayload(t, script, "init")
	for _, sh := range shells(t) {
		t.Run(filepath.Base(strings.Join(sh, "-")), func(t *testing.T) {
			m := sysvinitCT()
			root := m.tree(t)
			code, out := runTakeover(t, sh, script, m, root)
			if code != 0 {
				t.Fatalf("install.sh --yes in an OpenVZ container = %d, want 0; output:\n%s", code, out)
			}
			for _, w := range []string{"step  files", "step  init", "step  links", "step  done", "step  switch       asking sysvinit"} {
				if !strings.Contains(out, w) {
					t.Errorf("install.sh --yes: output lacks %q:\n%s", w, out)
				}
			}
			for _, n := range []string{"init", "halt", "reboot", "poweroff", "shutdown", "telinit"} {
				if target, err := os.Readlink(filepath.Join(root, "sbin", n)); target != "init.allium" {
					t.Errorf("/sbin/%s -> %q (%v), want a link to init.allium", n, target, err)
				}
			}
			if got := readTree(t, root, "sbin/init.allium"); got != init {
				t.Errorf("/sbin/init.allium is not the bundle's init")
			}
			if got := readTree(t, root, "sbin/init.allium-orig"); got != fakeSysvinit {
				t.Errorf("/sbin/init.allium-orig = %q, want the old init", got)
			}
			if got := readTree(t, root, "sbin/halt.allium-orig"); got != "sysvinit halt" {
				t.Errorf("/sbin/halt.allium-orig = %q, want the old halt", got)
			}
			if target, _ := os.Readlink(filepath.Join(root, "sbin/reboot.allium-orig")); target != "halt" {
				t.Errorf("/sbin/reboot.allium-orig -> %q, want the old link (-> halt) kept as a link", target)
			}
			if conf := readTree(t, root, "etc/allium/node.json"); !strings.Contains(conf, `"name": "t1"`) || strings.Contains(conf, `"data"`) {
				t.Errorf("/etc/allium/node.json = %s, want node t1 with no data partition (the container's root keeps it)", conf)
			}
			for _, f := range []string{"etc/allium/node.key", "etc/allium/authorized_keys"} {
				if readTree(t, root, f) == "" {
					t.Errorf("/%s is empty", f)
				}
			}
			wantRecord := "kept /sbin/init\nkept /sbin/reboot\nkept /sbin/halt\nadded /sbin/telinit\nadded /sbin/shutdown\nadded /sbin/poweroff\nadded /etc/allium\nadded /sbin/init.allium\n"
			if got := readTree(t, root, "etc/allium/takeover"); got != wantRecord {
				t.Errorf("/etc/allium/takeover =\n%s\nwant\n%s", got, wantRecord)
			}
			if got := readTree(t, root, "etc/passwd"); got != "root:x:0:0:root:/root:/bin/sh\n" {
				t.Errorf("/etc/passwd = %q, changed by a --no-tor node's install", got)
			}
			if got := readTree(t, root, "switched"); got != "init 6\n" {
				t.Errorf("the switch asked the old init %q, want \"init 6\" (telinit 6: restart)", got)
			}
			for _, leftover := range []string{"etc/allium.allium-tmp", "sbin/init.allium.allium-tmp"} {
				if _, err := os.Lstat(filepath.Join(root, leftover)); err == nil {
					t.Errorf("/%s left behind", leftover)
				}
			}
		})
	}
}

func TestInstallTakeoverSwitch(t *testing.T) {
	script := bundle(t)
	sh := shells(t)[0]
	for _, tc := range []struct {
		name  string
		m     *machine
		args  []string
		asked string
	}{
		{"systemd", openvz().with(func(m *machine) { m.links["sbin/init"] = "/lib/systemd/systemd" }), nil, "systemctl reboot\n"},
		{"busybox", openvz().with(func(m *machine) { m.links["sbin/init"] = "/bin/busybox" }), nil, "kill -TERM 1\n"},
		{"no switch", sysvinitCT(), []string{"--no-switch"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := tc.m.tree(t)
			code, out := runTakeover(t, sh, script, tc.m, root, tc.args...)
			if code != 0 {
				t.Fatalf("install.sh --yes %v = %d, want 0; output:\n%s", tc.args, code, out)
			}
			got, _ := os.ReadFile(filepath.Join(root, "switched"))
			if string(got) != tc.asked {
				t.Errorf("the switch ran %q, want %q; output:\n%s", got, tc.asked, out)
			}
			if target, _ := os.Readlink(filepath.Join(root, "sbin/init")); target != "init.allium" {
				t.Errorf("/sbin/init -> %q, want init.allium", target)
			}
		})
	}
}

// Each refusal and each failure part way leaves the container as it
// was: its init in place, nothing added.
func TestInstallTakeoverFailures(t *testing.T) {
	script := bundle(t)
	cases := []struct {
		name  string
		m     *machine
		setup func(t *testing.T, root string)
		// inTree: setup makes part of the container (checked unchanged);
		// else it is the trap the failure comes from, which the install
		// removes (its temporary file).
		inTree bool
		want   string
	}{
		{"no init", sysvinitCT().with(func(m *machine) { delete(m.files, "sbin/init") }), nil, false,
			"this container has no /sbin/init; nothing was changed"},
		{"unknown init", sysvinitCT().with(func(m *machine) { m.files["sbin/init"] = "#!/bin/sh\n# openrc\n" }), nil, false,
			"/sbin/init is not systemd, sysvinit or busybox init"},
		{"already installed", sysvinitCT().with(func(m *machine) { m.files["sbin/init.allium-orig"] = "old" }), nil, false,
			"refusing: allium: already an Allium node (found /sbin/init.allium-orig)"},
		{"leftovers", sysvinitCT().with(func(m *machine) { m.files["sbin/halt.allium-orig"] = "old" }), nil, false,
			"already taken over, or an earlier install's leftovers: found /sbin/halt.allium-orig"},
		{"full disk", sysvinitCT(), func(t *testing.T, root string) {
			// init's temporary copy goes to /dev/full: ENOSPC.
			if err := os.Symlink("/dev/full", filepath.Join(root, "sbin/init.allium.allium-tmp")); err != nil {
				t.Fatal(err)
			}
		}, false, "install.sh: write "},
		{"a failure among the links", sysvinitCT(), func(t *testing.T, root string) {
			// shutdown is a directory: it cannot be kept (cp -P), after
			// halt, reboot and poweroff were linked.
			if err := os.Mkdir(filepath.Join(root, "sbin/shutdown"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, true, "keep /sbin/shutdown as /sbin/shutdown.allium-orig: the copy failed"},
	}
	for _, sh := range shells(t) {
		for _, c := range cases {
			t.Run(filepath.Base(strings.Join(sh, "-"))+"/"+c.name, func(t *testing.T) {
				root := c.m.tree(t)
				for _, n := range []string{"sbin/init", "sbin/halt"} {
					os.Chmod(filepath.Join(root, n), 0o755)
				}
				if c.setup != nil && c.inTree {
					c.setup(t, root)
				}
				before := treeHash(t, root)
				if c.setup != nil && !c.inTree {
					c.setup(t, root)
				}
				code, out := runTakeover(t, sh, script, c.m, root)
				if code != 1 || !strings.Contains(out, c.want) {
					t.Errorf("install.sh --yes = %d, want 1 and %q; output:\n%s", code, c.want, out)
				}
				if after := treeHash(t, root); after != before {
					t.Errorf("install.sh --yes, failed, left the container changed; output:\n%s", out)
				}
				if _, err := os.Stat(filepath.Join(root, "switched")); err == nil {
					t.Errorf("a failed install asked the old init to restart")
				}
			})
		}
	}
}

// readPayload is one payload file of a bundle, by name.
func readPayload(t *testing.T, bundle, name string) string {
	t.Helper()
	data, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	head, body, ok := strings.Cut(string(data), "\n"+payloadMarker)
	if !ok {
		t.Fatalf("%s: no payload marker", bundle)
	}
	_, list, _ := strings.Cut(head, "\nPAYLOAD='")
	list, _, _ = strings.Cut(list, "'")
	off := 0
	for _, line := range strings.Split(list, "\n") {
		var n string
		var size int
		var sum string
		if _, err := fmt.Sscan(line, &n, &size, &sum); err != nil {
			t.Fatalf("payload line %q: %v", line, err)
		}
		if n == name {
			return body[off : off+size]
		}
		off += size
	}
	t.Fatalf("%s: no payload file %s", bundle, name)
	return ""
}
