package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Ext4 mounts a fresh journaled ext4 of size bytes, made by mkfs.ext4 in
// a sparse file under tb.TempDir() and attached with mount -o loop, and
// returns its mount point; a cleanup unmounts it. It needs the root
// tier (see NeedRoot) and fails tb if mkfs.ext4 or mount does.
//
// Tests and benchmarks that create and remove many files use it for a
// filesystem like a node's data disk: a root filesystem without a
// journal (as on some VMs) makes file creation much slower after any
// removal.
func Ext4(tb testing.TB, size int64) string {
	tb.Helper()
	dir := tb.TempDir()
	img, mnt := filepath.Join(dir, "ext4.img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		tb.Fatal(err)
	}
	f, err := os.Create(img)
	if err == nil {
		err = f.Truncate(size)
		f.Close()
	}
	if err != nil {
		tb.Fatal(err)
	}
	Run(tb, "mkfs.ext4", "-q", "-F", img)
	Run(tb, "mount", "-o", "loop", img, mnt)
	tb.Cleanup(func() { Unmount(tb, mnt) })
	return mnt
}

// Unmount unmounts dir, waiting up to 5 s for a dying mount namespace
// or process to let go of it, then detaching it lazily and failing tb.
func Unmount(tb testing.TB, dir string) {
	tb.Helper()
	var out []byte
	var err error
	for range 50 {
		if out, err = exec.Command("umount", dir).CombinedOutput(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Errorf("umount %s: %v: %s; detaching it lazily", dir, err, out)
	exec.Command("umount", "-l", dir).Run()
}

// Run runs a command and fails tb with its output if it fails.
func Run(tb testing.TB, name string, args ...string) {
	tb.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		tb.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}
