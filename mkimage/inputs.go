package main

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Where findKernel looks by default.
const (
	bootDir    = "/boot"
	modulesDir = "/lib/modules"
)

// findKernel settles the kernel, its release (from its own header) and
// the directory of its modules.
func (b *build) findKernel(context.Context) (err error) {
	b.kernel = b.f.kernel
	if b.kernel == "" {
		if b.kernel, err = findKernel(bootDir, modulesDir, runningRelease()); err != nil {
			return err
		}
	}
	if b.release, err = readKernelRelease(b.kernel); err != nil {
		return fmt.Errorf("%w: pass --kernel with an x86 bzImage", err)
	}
	b.modDir = b.f.modules
	if b.modDir == "" {
		b.modDir = filepath.Join(modulesDir, b.release)
	}
	if fi, err := os.Stat(b.modDir); err != nil || !fi.IsDir() {
		return fmt.Errorf("no modules for kernel %s at %s: install that kernel's modules or pass --modules", b.release, b.modDir)
	}
	return nil
}

// besideMe is the file name beside the running executable, where
// `make build` puts init, kexec and mkimage.
func besideMe(name string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding the %s binary: %w: pass --%s", name, err, name)
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	return filepath.Join(filepath.Dir(exe), name), nil
}

// findKexec finds the static kexec helper install.sh carries. Without
// one the bundle still installs in OS containers, and its preflight
// refuses the kexec takeover by name.
func (b *build) findKexec(context.Context) (err error) {
	p := b.f.kexec
	if p == "" {
		if p, err = besideMe("kexec"); err != nil {
			return err
		}
	}
	fi, err := os.Stat(p)
	switch {
	case err == nil && fi.Mode().IsRegular():
		b.kexecPath = p
	case b.f.kexec != "":
		return fmt.Errorf("kexec helper %s: not a file (%v)", p, err)
	default:
		b.warnf("no kexec helper at %s (make build writes it): install.sh will not be able to kexec", p)
	}
	return nil
}

func (b *build) readInit(context.Context) (err error) {
	p := b.f.init
	if p == "" {
		if p, err = besideMe("init"); err != nil {
			return err
		}
	}
	b.initPath = p
	b.init, err = os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no init binary at %s: run `make build` or pass --init", p)
	}
	if err != nil {
		return fmt.Errorf("init binary: %w", err)
	}
	if interp := elfInterpreter(p); interp != "" {
		b.warnf("init binary %s is dynamically linked (interpreter %s): it cannot run in the initramfs; build it with CGO_ENABLED=0", p, interp)
	}
	return nil
}

// elfInterpreter returns the program interpreter an ELF file asks for,
// or "" for a static binary or anything that is not ELF.
func elfInterpreter(path string) string {
	f, err := elf.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, min(p.Filesz, 4096))
			n, _ := p.ReadAt(b, 0)
			if s := strings.TrimRight(string(b[:n]), "\x00"); s != "" {
				return s
			}
			return "(unreadable)"
		}
	}
	return ""
}
