package main

import (
	"archive/tar"
	"debug/elf"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"allium/internal/testkit"
)

// rootTier reports whether the root tier runs, to run the image under
// chroot; if not, it logs how to enable it.
func rootTier(t *testing.T) bool {
	t.Helper()
	ok, why := testkit.RootTier()
	if !ok {
		t.Log("not running the image under chroot:", why)
	}
	return ok
}

// packBinary packs prog and returns the image's entries and the
// directory it was unpacked to with tar(1).
func packBinary(t *testing.T, prog string, extra ...string) ([]tarEntry, string) {
	t.Helper()
	name := filepath.Base(prog)
	out := filepath.Join(t.TempDir(), name+".tar")
	args := append([]string{"pack", "--binary", prog, "-o", out}, extra...)
	code, stdout, stderr := runMkimage(t, args...)
	if code != 0 {
		t.Fatalf("mkimage %q = %d; stderr:\n%s", args, code, stderr)
	}
	t.Logf("mkimage %q:\n%s", args, stdout)
	entries := readImage(t, out)
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("no tar(1) to unpack the image with")
	}
	dir := t.TempDir()
	if b, err := exec.Command("tar", "-xf", out, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar -xf %s: %v\n%s", out, err, b)
	}
	return entries, filepath.Join(dir, "rootfs")
}

// checkRelativeLinks checks that no symlink points out of the image.
func checkRelativeLinks(t *testing.T, entries []tarEntry) {
	t.Helper()
	for _, e := range entries {
		if e.hdr.Typeflag == tar.TypeSymlink && path.IsAbs(e.hdr.Linkname) {
			t.Errorf("%s -> %s: an absolute symlink, want a relative one", e.hdr.Name, e.hdr.Linkname)
		}
	}
}

// chrootRun runs argv chrooted in root and expects exit status 0.
func chrootRun(t *testing.T, root string, argv ...string) {
	t.Helper()
	out, err := exec.Command("chroot", append([]string{root}, argv...)...).CombinedOutput()
	if err != nil {
		t.Errorf("chroot %s %q = %v, want exit 0; output:\n%s", root, argv, err, out)
	}
}

func TestPackBinaryDynamic(t *testing.T) {
	const prog = "/bin/true"
	interp := elfInterpreter(prog)
	if interp == "" {
		t.Skipf("%s is not dynamically linked here", prog)
	}
	entries, root := packBinary(t, prog)
	m := manifestOf(t, entries)
	if !slices.Equal(m.Command, []string{prog}) || m.Name != "true" {
		t.Errorf("manifest command, name = %q, %q; want [%s], true", m.Command, m.Name, prog)
	}
	checkSorted(t, entries)
	checkRelativeLinks(t, entries)
	f, err := elf.Open(prog)
	must(t, err)
	needed, err := f.ImportedLibraries()
	f.Close()
	must(t, err)
	for _, p := range append([]string{prog, interp, "/etc/passwd", "/etc/group"}, needed...) {
		if !path.IsAbs(p) {
			p = findBase(entries, p)
		}
		if fi, err := os.Stat(filepath.Join(root, p)); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("image %s: %v, want a regular file (through the image's own symlinks)", p, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "tmp")); err != nil || fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		t.Errorf("image /tmp: %v, %v; want a 1777 directory", fi.Mode(), err)
	}
	if rootTier(t) {
		chrootRun(t, root, prog)
	}
}

// findBase is the path below rootfs of the entry whose base name is
// name, or name if there is none.
func findBase(entries []tarEntry, name string) string {
	for _, e := range entries {
		if path.Base(e.hdr.Name) == name {
			return "/" + strings.TrimPrefix(e.hdr.Name, "rootfs/")
		}
	}
	return name
}

// busybox finds the static busybox, installing busybox-static as root if
// it is missing.
func busybox(t *testing.T) string {
	t.Helper()
	const bb = "/bin/busybox"
	if _, err := os.Stat(bb); err != nil && os.Geteuid() == 0 {
		cmd := exec.Command("apt-get", "install", "-y", "-q", "busybox-static")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("apt-get install busybox-static: %v\n%s", err, out)
		}
	}
	if _, err := os.Stat(bb); err != nil {
		t.Skipf("no %s: apt-get install busybox-static to run this test", bb)
	}
	if interp := elfInterpreter(bb); interp != "" {
		t.Skipf("%s is dynamically linked (%s): apt-get install busybox-static", bb, interp)
	}
	return bb
}

func TestPackBinaryStatic(t *testing.T) {
	bb := busybox(t)
	entries, root := packBinary(t, bb, "--cmd", bb+" httpd -f -p 8080", "--user", "nobody")
	m := manifestOf(t, entries)
	if want := []string{bb, "httpd", "-f", "-p", "8080"}; !slices.Equal(m.Command, want) || m.User != "nobody" {
		t.Errorf("manifest command, user = %q, %q; want %q, nobody", m.Command, m.User, want)
	}
	checkRelativeLinks(t, entries)
	var files []string
	for _, e := range entries[1:] {
		if e.hdr.Typeflag == tar.TypeReg {
			files = append(files, path.Base(e.hdr.Name))
		}
	}
	slices.Sort(files)
	if want := []string{"busybox", "group", "passwd"}; !slices.Equal(files, want) {
		t.Errorf("regular files = %q, want only %q: a static program needs no libraries", files, want)
	}
	if rootTier(t) {
		chrootRun(t, root, bb, "true")
		chrootRun(t, root, bb, "grep", "-q", "^nobody:", "/etc/passwd")
	}
}
