package qemutests

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const (
	enableVar = "ALLIUM_QEMU_TESTS" // "1" runs the tier
	binVar    = "ALLIUM_BIN"        // a directory holding init, cloud and mkimage
	qemu      = "qemu-system-x86_64"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if scratch.dir != "" {
		os.RemoveAll(scratch.dir)
	}
	os.Exit(code)
}

// env is what every boot needs: the real binaries and a kernel.
type env struct {
	init, cloud, mkimage string // paths of the binaries
	kernel               string // /boot/vmlinuz-RELEASE
	release              string // what uname -r must say in the guest
}

// setup skips tb unless the tier is enabled and this machine can boot the
// appliance; it builds the binaries once per package run unless
// $ALLIUM_BIN names them.
func setup(tb testing.TB) env {
	tb.Helper()
	if os.Getenv(enableVar) != "1" {
		tb.Skipf("QEMU tier off: set %s=1 to boot the appliance under QEMU (make test does; %s=DIR uses built binaries)",
			enableVar, binVar)
	}
	if _, err := exec.LookPath(qemu); err != nil {
		tb.Skipf("QEMU tier: %s is not installed (apt-get install qemu-system-x86)", qemu)
	}
	kernel, release, err := findKernel("/boot", "/lib/modules")
	if err != nil {
		tb.Skipf("QEMU tier: %v", err)
	}
	dir := binaries(tb)
	return env{
		init:    filepath.Join(dir, "init"),
		cloud:   filepath.Join(dir, "cloud"),
		mkimage: filepath.Join(dir, "mkimage"),
		kernel:  kernel,
		release: release,
	}
}

// findKernel picks the newest boot/vmlinuz-RELEASE whose modules are in
// modRoot/RELEASE. The release comes from the file name (Debian's
// convention), independently of how mkimage reads it from the bzImage.
func findKernel(boot, modRoot string) (path, release string, err error) {
	paths, err := filepath.Glob(filepath.Join(boot, "vmlinuz-*"))
	if err != nil || len(paths) == 0 {
		return "", "", fmt.Errorf("no %s/vmlinuz-* to boot (apt-get install linux-image-cloud-amd64)", boot)
	}
	for i := len(paths) - 1; i >= 0; i-- {
		rel := strings.TrimPrefix(filepath.Base(paths[i]), "vmlinuz-")
		if fi, err := os.Stat(filepath.Join(modRoot, rel)); err == nil && fi.IsDir() {
			return paths[i], rel, nil
		}
	}
	return "", "", fmt.Errorf("none of %s has its modules in %s", strings.Join(paths, ", "), modRoot)
}

// scratch holds what this package builds itself, removed by TestMain.
var scratch struct {
	mu  sync.Mutex
	dir string
}

func scratchDir() (string, error) {
	scratch.mu.Lock()
	defer scratch.mu.Unlock()
	if scratch.dir == "" {
		d, err := os.MkdirTemp("", "allium-qemu-tests-")
		if err != nil {
			return "", err
		}
		scratch.dir = d
	}
	return scratch.dir, nil
}

var built struct {
	once sync.Once
	dir  string
	err  error
}

// binaries is $ALLIUM_BIN, or a directory where init, cloud and mkimage
// were just built the way the Makefile builds them.
func binaries(tb testing.TB) string {
	tb.Helper()
	if d := os.Getenv(binVar); d != "" {
		abs, err := filepath.Abs(d)
		if err != nil {
			tb.Fatal(err)
		}
		for _, name := range []string{"init", "kexec", "cloud", "mkimage"} {
			if _, err := os.Stat(filepath.Join(abs, name)); err != nil {
				tb.Fatalf("%s=%s: %v (run make build, or unset %s to build here)", binVar, d, err, binVar)
			}
		}
		return abs
	}
	built.once.Do(func() {
		built.dir, built.err = buildInto("bin", "allium/init", "allium/kexec", "allium/cloud", "allium/mkimage")
	})
	if built.err != nil {
		tb.Fatalf("building the binaries: %v", built.err)
	}
	return built.dir
}

var bare struct {
	once sync.Once
	path string
	err  error
}

// bareInit builds internal/bareinit, BenchmarkBoot's baseline PID 1.
func bareInit(tb testing.TB) string {
	tb.Helper()
	bare.once.Do(func() {
		var dir string
		dir, bare.err = buildInto("bare", "allium/qemu-tests/internal/bareinit")
		bare.path = filepath.Join(dir, "bareinit")
	})
	if bare.err != nil {
		tb.Fatalf("building bareinit: %v", bare.err)
	}
	return bare.path
}

// buildInto builds pkgs, static and stripped as `make build` does, into
// a new directory sub of the scratch directory.
func buildInto(sub string, pkgs ...string) (string, error) {
	root, err := scratchDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, sub)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	args := append([]string{"build", "-trimpath", "-ldflags=-s -w", "-o", dir + string(filepath.Separator)}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return "", fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
		}
		return "", fmt.Errorf("CGO_ENABLED=0 go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return dir, nil
}
