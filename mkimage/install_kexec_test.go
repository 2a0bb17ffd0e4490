package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeKexec is the bundle's kexec helper on a fake machine: it records
// its arguments in the tree and answers as the real one would, or
// refuses with the real one's words when $KEXEC_REFUSE names a reason.
func fakeKexec(root, refuse string) string {
	s := "#!/bin/sh\nprintf '%s\\n' \"$*\" >>'" + root + "/kexec.log'\n"
	if refuse != "" {
		return s + "echo 'kexec: this kernel refuses to load another: " + refuse + "' >&2\nexit 1\n"
	}
	return s + "[ \"$1\" = load ] && echo \"loaded $3 with kexec_file_load\"\nexit 0\n"
}

// TestInstallKexec runs the kexec takeover's install on a fake KVM
// machine, up to the switch: the files, the data directory, the kexec
// helper's command line; and --permanent's GRUB entry.
func TestInstallKexec(t *testing.T) {
	script := bundle(t)
	for _, sh := range shells(t) {
		name := filepath.Base(strings.Join(sh, "-"))
		t.Run(name+"/trial", func(t *testing.T) {
			m := kvmStatic()
			root := m.tree(t)
			m.cmds = map[string]string{"kexec": fakeKexec(root, "")}
			code, out := runInstall(t, sh, script, root, m, "--yes", "--no-switch")
			if code != 0 {
				t.Fatalf("install.sh --yes --no-switch = %d, want 0; output:\n%s", code, out)
			}
			for _, want := range []string{"step  files", "step  data", "step  load", "step  loaded       loaded " + root + "/boot/allium/vmlinuz with kexec_file_load", "step  ready"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			for _, f := range []struct {
				path string
				mode os.FileMode
			}{{"boot/allium", 0o700 | os.ModeDir}, {"boot/allium/vmlinuz", 0o644}, {"boot/allium/initrd.img", 0o600},
				{"boot/allium/kexec", 0o755}, {"boot/allium/cmdline", 0o644}, {"var/lib/allium", 0o700 | os.ModeDir}} {
				fi, err := os.Stat(filepath.Join(root, f.path))
				if err != nil {
					t.Errorf("after the install: %v", err)
				} else if fi.Mode() != f.mode {
					t.Errorf("%s: mode %v, want %v", f.path, fi.Mode(), f.mode)
				}
			}
			if b, _ := os.ReadFile(filepath.Join(root, "boot/allium/kexec")); string(b) != "#!fake kexec\n" {
				t.Errorf("boot/allium/kexec = %q, want the payload's", b)
			}
			log, _ := os.ReadFile(filepath.Join(root, "kexec.log"))
			want := "load --kernel " + root + "/boot/allium/vmlinuz --initrd " + root + "/boot/allium/initrd.img --cmdline " +
				"console=tty0 console=ttyS0 panic=-1 loglevel=4 allium.data=UUID=" + fakeUUID + ":/var/lib/allium ip=203.0.113.10::203.0.113.1:255.255.255.0::eth0:off:203.0.113.53:203.0.113.54 ifname=eth0:" + fakeMAC + " allium.install=kexec\n"
			if string(log) != want {
				t.Errorf("the kexec helper ran with\n%s\nwant\n%s", log, want)
			}
			if _, err := os.Stat(filepath.Join(root, "etc/grub.d/42_allium")); err == nil {
				t.Error("a trial install wrote a GRUB entry")
			}
		})
		t.Run(name+"/refused", func(t *testing.T) {
			m := kvmStatic()
			root := m.tree(t)
			why := "kexec_file_load: refused by kernel lockdown (integrity); kexec_load: refused by kernel lockdown (integrity)"
			m.cmds = map[string]string{"kexec": fakeKexec(root, why)}
			code, out := runInstall(t, sh, script, root, m, "--yes")
			if code != 1 || !strings.Contains(out, "install.sh: kexec: this kernel refuses to load another: "+why+"; this system is unchanged but for /boot/allium") {
				t.Errorf("install.sh --yes with kexec refused = %d, want 1 and the reason; output:\n%s", code, out)
			}
			if strings.Contains(out, "step  switch") {
				t.Errorf("install.sh switched after a refused load:\n%s", out)
			}
		})
		t.Run(name+"/permanent", func(t *testing.T) {
			m := kvmStatic()
			m.files["etc/grub.d/10_linux"] = "#!/bin/sh\n"
			root := m.tree(t)
			m.cmds = map[string]string{"kexec": fakeKexec(root, ""),
				"update-grub": "#!/bin/sh\necho update-grub >>'" + root + "/kexec.log'\n"}
			code, out := runInstall(t, sh, script, root, m, "--yes", "--permanent", "--no-switch")
			if code != 0 || !strings.Contains(out, "step  grub") {
				t.Fatalf("install.sh --yes --permanent = %d, want 0 and a grub step; output:\n%s", code, out)
			}
			b, err := os.ReadFile(filepath.Join(root, "etc/grub.d/42_allium"))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"kernel=/boot/allium/vmlinuz data=/var/lib/allium", "allium.install=grub'", "set default=allium", "boot-old-system", "menuentry 'Allium node' --id allium"} {
				if !strings.Contains(string(b), want) {
					t.Errorf("42_allium lacks %q:\n%s", want, b)
				}
			}
			if log, _ := os.ReadFile(filepath.Join(root, "kexec.log")); !strings.HasPrefix(string(log), "update-grub\nload ") {
				t.Errorf("update-grub did not run before the load: %s", log)
			}
		})
		t.Run(name+"/permanent update-grub fails", func(t *testing.T) {
			m := kvmStatic()
			m.files["etc/grub.d/10_linux"] = "#!/bin/sh\n"
			root := m.tree(t)
			m.cmds = map[string]string{"kexec": fakeKexec(root, ""),
				"update-grub": "#!/bin/sh\n[ -e '" + root + "/etc/grub.d/42_allium' ] && { echo 'grub-probe: error: cannot find a device for /boot/allium' >&2; exit 1; }\nexit 0\n"}
			code, out := runInstall(t, sh, script, root, m, "--yes", "--permanent")
			if code != 1 || !strings.Contains(out, "update-grub failed, the entry is taken out again: grub-probe: error: cannot find a device for /boot/allium") {
				t.Errorf("install.sh --permanent with update-grub failing = %d, want 1 and its error; output:\n%s", code, out)
			}
			if _, err := os.Stat(filepath.Join(root, "etc/grub.d/42_allium")); err == nil {
				t.Error("42_allium left behind after update-grub failed")
			}
			if _, err := os.Stat(filepath.Join(root, "kexec.log")); err == nil {
				t.Error("the kernel was loaded after update-grub failed")
			}
		})
		t.Run(name+"/permanent without grub", func(t *testing.T) {
			m := kvmStatic()
			root := m.tree(t)
			before := treeHash(t, root)
			code, out := runInstall(t, sh, script, root, m, "--yes", "--permanent")
			if code != 1 || !strings.Contains(out, "refusing: grub: no /etc/grub.d: --permanent needs GRUB 2") {
				t.Errorf("install.sh --permanent without GRUB = %d, want 1 and a refusal; output:\n%s", code, out)
			}
			if treeHash(t, root) != before {
				t.Error("a refused install changed the machine")
			}
		})
	}
}

// install.sh --remove, run on the old system, takes the GRUB entry and
// /boot/allium out and keeps the node's data.
func TestInstallRemove(t *testing.T) {
	script := bundle(t)
	for _, sh := range shells(t) {
		t.Run(filepath.Base(strings.Join(sh, "-")), func(t *testing.T) {
			m := kvmStatic()
			m.files["etc/grub.d/42_allium"] = "#!/bin/sh\n"
			m.files["boot/allium/vmlinuz"] = "k"
			m.files["var/lib/allium/state.db"] = "db"
			m.files["var/lib/allium/boot-old-system"] = "mark"
			root := m.tree(t)
			m.cmds = map[string]string{"update-grub": "#!/bin/sh\necho update-grub >>'" + root + "/grub.log'\n"}
			code, out := runInstall(t, sh, script, root, m, "--remove")
			if code != 0 || !strings.Contains(out, "step  done") {
				t.Fatalf("install.sh --remove = %d, want 0; output:\n%s", code, out)
			}
			for p, want := range map[string]bool{"etc/grub.d/42_allium": false, "boot/allium": false,
				"var/lib/allium/boot-old-system": false, "var/lib/allium/state.db": true, "grub.log": true} {
				if _, err := os.Stat(filepath.Join(root, p)); (err == nil) != want {
					t.Errorf("after --remove, %s exists: %v, want %v", p, err == nil, want)
				}
			}
		})
	}
}
