package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// takenOver lays out a container as install.sh leaves it: sysvinit's
// init and halt kept, reboot a link the container did not have, passwd
// kept, /etc/allium with the record.
func takenOver(t *testing.T, record string) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"sbin/init.allium":         "allium",
		"sbin/init.allium-orig":    "sysvinit",
		"sbin/halt.allium-orig":    "sysvinit halt",
		"etc/passwd":               "root:x:0:0::/root:/bin/sh\nallium-tor:x:990:990::/var/lib/allium/tor:/bin/false\n",
		"etc/passwd.allium-orig":   "root:x:0:0::/root:/bin/sh\n",
		"etc/allium/node.json":     "{}",
		"var/lib/allium/state.db":  "data",
		"sbin/unrelated":           "x",
		"etc/allium/takeover.note": "",
	}
	for p, data := range files {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"init", "halt", "reboot"} {
		if err := os.Symlink("init.allium", filepath.Join(root, "sbin", n)); err != nil {
			t.Fatal(err)
		}
	}
	if record != "" {
		os.WriteFile(filepath.Join(root, takeoverRecord), []byte(record), 0o644)
	}
	return root
}

const fullRecord = "kept /sbin/init\nkept /sbin/halt\nkept /etc/passwd\nadded /sbin/reboot\nadded /etc/allium\nadded /sbin/init.allium\n"

func TestUninstallTakeover(t *testing.T) {
	for _, tc := range []struct{ name, record string }{{"record", fullRecord}, {"no record", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			root := takenOver(t, tc.record)
			var said []string
			if err := undoTakeover(root, func(s string) { said = append(said, s) }); err != nil {
				t.Fatalf("undoTakeover = %v, want nil", err)
			}
			want := map[string]string{"sbin/init": "sysvinit", "sbin/halt": "sysvinit halt", "etc/passwd": "root:x:0:0::/root:/bin/sh\n",
				"var/lib/allium/state.db": "data", "sbin/unrelated": "x"}
			for p, data := range want {
				fi, err := os.Lstat(filepath.Join(root, p))
				b, _ := os.ReadFile(filepath.Join(root, p))
				if err != nil || !fi.Mode().IsRegular() || string(b) != data {
					t.Errorf("after undoTakeover: %s = %q (%v), want the file %q", p, b, err, data)
				}
			}
			for _, p := range []string{"sbin/init.allium-orig", "sbin/halt.allium-orig", "etc/passwd.allium-orig"} {
				if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
					t.Errorf("after undoTakeover: %s still there", p)
				}
			}
			gone := []string{"sbin/reboot", "etc/allium", "sbin/init.allium"}
			if tc.record == "" {
				gone = nil // without the record nothing added is known
			}
			for _, p := range gone {
				if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
					t.Errorf("after undoTakeover: %s (added) still there", p)
				}
			}
			if first := said[0]; tc.record != "" && first != "restored /sbin/init from /sbin/init.allium-orig" {
				t.Errorf("undoTakeover's first step = %q, want /sbin/init restored first", first)
			}
			if last := said[len(said)-1]; !strings.Contains(last, "/var/lib/allium") {
				t.Errorf("undoTakeover's last words = %q, want it to say the data stays", last)
			}
		})
	}
}

func TestUninstallTakeoverRefusals(t *testing.T) {
	t.Run("not taken over", func(t *testing.T) {
		if err := undoTakeover(t.TempDir(), func(string) {}); !errors.Is(err, errNotTakenOver) {
			t.Errorf("undoTakeover(an empty root) = %v, want errNotTakenOver", err)
		}
	})
	t.Run("bad record", func(t *testing.T) {
		root := takenOver(t, "kept sbin/init\n")
		err := undoTakeover(root, func(string) {})
		if err == nil || !strings.Contains(err.Error(), "absolute path") {
			t.Errorf("undoTakeover(relative path in the record) = %v, want an error naming it", err)
		}
		if b, _ := os.ReadFile(filepath.Join(root, "sbin/init.allium-orig")); string(b) != "sysvinit" {
			t.Errorf("a refused uninstall changed /sbin/init.allium-orig")
		}
	})
	t.Run("a link not ours", func(t *testing.T) {
		root := takenOver(t, fullRecord)
		os.Remove(filepath.Join(root, "sbin/reboot"))
		os.Symlink("/bin/systemctl", filepath.Join(root, "sbin/reboot"))
		if err := undoTakeover(root, func(string) {}); err != nil {
			t.Fatal(err)
		}
		if target, _ := os.Readlink(filepath.Join(root, "sbin/reboot")); target != "/bin/systemctl" {
			t.Errorf("undoTakeover removed /sbin/reboot -> %q, which it did not make", target)
		}
	})
}

// Regression: sysvinit's /sbin/reboot is a link to halt, so its kept
// reboot.allium-orig pointed at halt, which install.sh had made a link
// to init.allium: `reboot -d -f -i` (sysvinit's rc 6, at the switch)
// exec'd itself for ever. The kept original of a link to a replaced
// command is that command's kept original.
func TestKeptOriginal(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.Symlink(self, filepath.Join(dir, "init.allium"))
	for _, n := range []string{"halt", "reboot", "poweroff"} {
		os.Symlink("init.allium", filepath.Join(dir, n))
	}
	os.WriteFile(filepath.Join(dir, "halt.allium-orig"), []byte("sysvinit halt"), 0o755)
	os.Symlink("halt", filepath.Join(dir, "reboot.allium-orig"))
	os.Symlink("poweroff", filepath.Join(dir, "poweroff.allium-orig")) // a loop
	for _, tc := range []struct {
		name, want string
		ok         bool
	}{
		{"halt", "halt.allium-orig", true},
		{"reboot", "halt.allium-orig", true},
		{"poweroff", "", false},
		{"telinit", "", false},
	} {
		got, ok := keptOriginal(filepath.Join(dir, tc.name))
		if ok != tc.ok || (ok && filepath.Base(got) != tc.want) {
			t.Errorf("keptOriginal(%s) = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}
