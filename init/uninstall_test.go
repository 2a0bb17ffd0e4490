package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"allium/rootfs"
)

// Uninstall does what the node's install asks for: a trial only
// reboots, a GRUB install first leaves the mark GRUB's entry reads, a
// node not installed over a system refuses and keeps running.
func TestUninstall(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cmdline    string
		persistent bool
		want       string // in the status, or the error
		mark       bool
		reboot     bool
	}{
		{"kexec trial", "allium.install=kexec", true, "a trial install", false, true},
		{"grub", "allium.install=grub", true, "GRUB's default is the old system again", true, true},
		{"grub on tmpfs", "allium.install=grub", false, "the data root is not on the disk", false, false},
		{"not installed", "console=ttyS0", true, "not installed over another system", false, false},
		{"unknown", "allium.install=floppy", true, "not installed over another system", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, rootfs.DataDir), 0o700); err != nil {
				t.Fatal(err)
			}
			n := newNode(testLogger(&bytes.Buffer{}), &fakeKernel{}, root)
			n.cmdline = parseCmdline(tc.cmdline)
			n.data.Persistent, n.data.Desc = tc.persistent, "tmpfs"
			status, err := n.Uninstall()
			got := status
			if err != nil {
				got = err.Error()
			}
			if !strings.Contains(got, tc.want) || (err == nil) != tc.reboot {
				t.Errorf("Uninstall() = %q, %v; want %q and ok=%v", status, err, tc.want, tc.reboot)
			}
			_, serr := os.Stat(filepath.Join(root, rootfs.DataDir, oldSystemMark))
			if (serr == nil) != tc.mark {
				t.Errorf("the mark exists: %v, want %v", serr == nil, tc.mark)
			}
			select {
			case cmd := <-n.power:
				if !tc.reboot || cmd != powerReboot {
					t.Errorf("Uninstall asked for power command %d, want a reboot: %v", cmd, tc.reboot)
				}
			default:
				if tc.reboot {
					t.Error("Uninstall did not ask for a reboot")
				}
			}
		})
	}
}
