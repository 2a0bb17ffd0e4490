package qemutests

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"allium/api"
)

// The real PyGrub: Debian's, unpacked from its packages, never installed.
// pygrub is in xen-utils; its C extension needs libxenfsimage and the
// fsimage plugins, which are in libxenmisc (the ext2fs plugin links the
// system's libext2fs).
const (
	pygrubPkg    = "xen-utils-4.17"
	pygrubLibPkg = "libxenmisc4.17"
	pygrubPath   = "usr/lib/xen-4.17/bin/pygrub"
	pygrubLibs   = "usr/lib/xen-4.17/lib/x86_64-linux-gnu"
	systemPython = "/usr/bin/python3" // the .so is built for Debian's python3.11
	cacheRoot    = "/var/cache/allium-test"
	partOffset   = "?offset=1048576" // disk.img's partition, for e2fsprogs
)

// TestPyGrubDisk runs Debian's real PyGrub against mkimage's disk.img:
// it must list the menu's entries and extract a kernel and an initramfs
// byte-identical to the appliance's, from grub.cfg and, without it, from
// menu.lst. Then the disk boots under QEMU (which has no PyGrub: mkimage
// qemu --disk boots the same kernel and initramfs directly, with
// disk.img as the node's only disk) and keeps its state across a
// power-off; PyGrub still reads the disk the node has written to.
func TestPyGrubDisk(t *testing.T) {
	e := setup(t)
	pg := fetchPyGrub(t)
	t.Parallel()
	a := newAppliance(t, e, "pyg", buildOpts{noTor: true})
	a.disk = true
	disk := filepath.Join(a.dir, "disk.img")

	list := pg.run(t, "-l", disk)
	for _, want := range []string{
		"Grub2ConfigFile'> to parse /boot/grub/grub.cfg",
		"title: Allium pyg (Xen PV, console hvc0)",
		"kernel: /boot/vmlinuz",
		"args: console=hvc0 panic=-1 loglevel=4 allium.data=LABEL=allium-data",
		"initrd: /boot/initrd.img",
		"title: Allium pyg (serial console ttyS0)",
	} {
		if !strings.Contains(list, want) {
			t.Errorf("pygrub -l disk.img = %s, want a line %q", list, want)
		}
	}
	pg.checkExtract(t, a, disk, "console=hvc0 ")

	// Without grub.cfg, PyGrub falls back to menu.lst: the older builds'
	// only format. On a copy: the original is the node's disk.
	legacy := filepath.Join(t.TempDir(), "legacy.img")
	run(t, "cp", "--sparse=always", disk, legacy)
	run(t, "debugfs", "-w", "-R", "rm /boot/grub/grub.cfg", legacy+partOffset)
	if list := pg.run(t, "-l", legacy); !strings.Contains(list, "GrubConfigFile'> to parse /boot/grub/menu.lst") ||
		!strings.Contains(list, "args: console=hvc0 ") {
		t.Errorf("pygrub -l (menu.lst only) = %s, want menu.lst parsed, console=hvc0", list)
	}
	pg.checkExtract(t, a, legacy, "console=hvc0 ")

	v := a.boot(t, "boot1")
	n, took := v.waitNode(t, "a first answer", anyNode)
	t.Logf("pyg boot1 (disk.img): first answer %.1f s after QEMU started", took.Seconds())
	checkNode(t, n, api.Node{Name: "pyg", Environment: api.EnvVM, Persistent: true, BootCount: 1, Kernel: e.release})
	if !strings.Contains(n.Data, "vda1") {
		t.Errorf("cloud info pyg --json: data = %q, want disk.img's partition /dev/vda1", n.Data)
	}
	if r := a.cloud(t, "poweroff", "pyg"); r.code != 0 {
		t.Fatalf("cloud poweroff pyg = exit %d, %s", r.code, r.stderr)
	}
	v.waitExit(t, exitWithin, "cloud poweroff")
	checkClean(t, disk+partOffset, "cloud poweroff")

	v = a.boot(t, "boot2")
	n, _ = v.waitNode(t, "a first answer after the power-off", anyNode)
	if n.BootCount != 2 {
		t.Errorf("cloud info pyg on the next boot: boot_count = %d, want 2 (the count lives on disk.img)", n.BootCount)
	}
	if r := a.cloud(t, "poweroff", "pyg"); r.code != 0 {
		t.Fatalf("cloud poweroff pyg = exit %d, %s", r.code, r.stderr)
	}
	v.waitExit(t, exitWithin, "cloud poweroff")
	pg.checkExtract(t, a, disk, "console=hvc0 ")
}

// pygrub is an unpacked PyGrub.
type pygrub struct {
	script string
	env    []string
}

func (p pygrub) run(tb testing.TB, args ...string) string {
	tb.Helper()
	cmd := exec.Command(systemPython, append([]string{p.script}, args...)...)
	cmd.Env = append(os.Environ(), p.env...)
	line := "python3 pygrub " + strings.Join(args, " ")
	tb.Log(line)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("%s: %v\n%s", line, err, out)
	}
	return string(out)
}

// checkExtract has PyGrub extract the default entry's files, as xl does
// before it builds a PV domain, and compares them with the appliance's.
func (p pygrub) checkExtract(tb testing.TB, a *appliance, disk, argsPrefix string) {
	tb.Helper()
	out := tb.TempDir()
	got := p.run(tb, "-q", "--output-format=simple", "--output-directory="+out, disk)
	fields := map[string]string{}
	for _, line := range strings.Split(got, "\n") {
		if k, v, ok := strings.Cut(line, " "); ok {
			fields[k] = v
		}
	}
	if !strings.HasPrefix(fields["args"], argsPrefix) {
		tb.Errorf("pygrub (simple) args = %q, want it to start %q", fields["args"], argsPrefix)
	}
	for key, file := range map[string]string{"kernel": "vmlinuz", "ramdisk": "initrd.img"} {
		want, err := os.ReadFile(filepath.Join(a.dir, file))
		if err != nil {
			tb.Fatal(err)
		}
		b, err := os.ReadFile(fields[key])
		if err != nil {
			tb.Errorf("pygrub printed %s %q: %v; output:\n%s", key, fields[key], err, got)
			continue
		}
		if !bytes.Equal(b, want) {
			tb.Errorf("pygrub's %s (%d bytes) differs from the appliance's %s (%d bytes)", key, len(b), file, len(want))
		}
	}
}

// fetchPyGrub unpacks Debian's PyGrub into a cache outside the work tree,
// keyed by the package's version, so only the first run downloads. It
// skips tb when apt cannot reach the registry.
func fetchPyGrub(tb testing.TB) pygrub {
	tb.Helper()
	if _, err := os.Stat(systemPython); err != nil {
		tb.Skipf("PyGrub test: no %s (apt-get install python3; tools/deps.sh does)", systemPython)
	}
	version := aptVersion(tb, pygrubPkg)
	dir := filepath.Join(pygrubCache(tb), pygrubPkg+"_"+version)
	p := pygrub{
		script: filepath.Join(dir, pygrubPath),
		env: []string{
			// pygrub ends with os._exit, which drops what a piped
			// stdout still buffers: -l would print nothing.
			"PYTHONUNBUFFERED=1",
			"LD_LIBRARY_PATH=" + filepath.Join(dir, pygrubLibs),
			"XEN_FSIMAGE_FSDIR=" + filepath.Join(dir, pygrubLibs, "xenfsimage"),
		},
	}
	done := filepath.Join(dir, ".unpacked")
	if _, err := os.Stat(done); err == nil {
		return p
	}
	if err := unpackPyGrub(dir, version); err != nil {
		os.RemoveAll(dir)
		if errors.Is(err, errNoRegistry) {
			tb.Skipf("PyGrub test: %v", err)
		}
		tb.Fatal(err)
	}
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

var errNoRegistry = errors.New("apt cannot reach the Debian registry")

// aptVersion is the candidate version of pkg in apt's lists (no network).
func aptVersion(tb testing.TB, pkg string) string {
	tb.Helper()
	out, err := exec.Command("apt-cache", "policy", pkg).Output()
	m := regexp.MustCompile(`Candidate: (\S+)`).FindSubmatch(out)
	if err != nil || m == nil || string(m[1]) == "(none)" {
		tb.Skipf("PyGrub test: apt knows no %s (%v): run apt-get update, on Debian 12 (bookworm)", pkg, err)
	}
	return strings.NewReplacer("/", "_", ":", "_").Replace(string(m[1]))
}

// pygrubCache is /var/cache/allium-test, or the user's cache directory
// where that is not writable.
func pygrubCache(tb testing.TB) string {
	tb.Helper()
	if err := os.MkdirAll(cacheRoot, 0o755); err == nil {
		return cacheRoot
	}
	d, err := os.UserCacheDir()
	if err != nil {
		tb.Skipf("PyGrub test: no cache directory: %v", err)
	}
	return filepath.Join(d, "allium-test")
}

// unpackPyGrub downloads both packages with apt-get download and unpacks
// them into dir with dpkg -x.
func unpackPyGrub(dir, version string) error {
	debs := dir + ".debs"
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(debs)
	cmd := exec.Command("apt-get", "download", pygrubPkg, pygrubLibPkg)
	cmd.Dir = debs
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: apt-get download %s %s: %v\n%s", errNoRegistry, pygrubPkg, pygrubLibPkg, err, out)
	}
	names, err := filepath.Glob(filepath.Join(debs, "*.deb"))
	if err != nil || len(names) != 2 {
		return fmt.Errorf("apt-get download %s %s: got %q, want two .deb files", pygrubPkg, pygrubLibPkg, names)
	}
	for _, deb := range names {
		if out, err := exec.Command("dpkg", "-x", deb, dir).CombinedOutput(); err != nil {
			return fmt.Errorf("dpkg -x %s: %v\n%s", deb, err, out)
		}
	}
	return nil
}

// run runs a tool the test needs, failing tb on error.
func run(tb testing.TB, prog string, args ...string) {
	tb.Helper()
	if out, err := exec.Command(prog, args...).CombinedOutput(); err != nil {
		tb.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
}
