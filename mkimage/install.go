package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// installFile is the install bundle: install.sh and its payload.
const installFile = "install.sh"

// installScript is the bundle's POSIX sh part; its @NAME@ placeholders
// are filled in by installHeader.
//
//go:embed install.sh
var installScript string

// payloadMarker ends the script: the payload's bytes follow it.
const payloadMarker = "__PAYLOAD__\n"

// payloadFile is one file of the bundle's payload.
type payloadFile struct {
	name string // as the script names it
	path string // where mkimage reads it, unless data is set
	data []byte // contents made up by mkimage (nodeTarFile); nil: read path
	size int64
	sum  string // sha256, hex
}

// installSpec is what the bundle's header records.
type installSpec struct {
	node, arch string
	cmdline    string // without allium.data= and ip=, which the script adds
	built      time.Time
	files      []payloadFile
}

// installHeader is the script with its placeholders filled in.
func installHeader(s installSpec) string {
	var list strings.Builder
	for _, f := range s.files {
		fmt.Fprintf(&list, "%s %d %s\n", f.name, f.size, f.sum)
	}
	return strings.NewReplacer(
		"@NODE@", shellQuote(s.node),
		"@ARCH@", shellQuote(s.arch),
		"@BUILT@", shellQuote(s.built.Format(time.RFC3339)),
		"@CMDLINE@", shellQuote(s.cmdline),
		"@PAYLOAD@", "'"+strings.TrimSuffix(list.String(), "\n")+"'",
	).Replace(installScript)
}

// writeInstall writes DIR/install.sh: the script, then the kernel, the
// initramfs, the takeover's node.tar.gz and init, each recorded with
// its size and sha256.
func (b *build) writeInstall(context.Context) error {
	spec, err := b.initrdSpec()
	if err != nil {
		return fmt.Errorf("install bundle: %w", err)
	}
	tarball, err := nodeTar(spec)
	if err != nil {
		return fmt.Errorf("install bundle: %w", err)
	}
	files := []payloadFile{
		{name: kernelFile, path: b.path(kernelFile)},
		{name: initrdFile, path: b.path(initrdFile)},
		{name: nodeTarFile, data: tarball},
		{name: "init", path: b.initPath},
	}
	if b.kexecPath != "" {
		files = append(files, payloadFile{name: "kexec", path: b.kexecPath})
	}
	for i := range files {
		if err := hashFile(&files[i]); err != nil {
			return fmt.Errorf("install bundle: %w", err)
		}
	}
	ispec := installSpec{node: b.f.name, arch: unameArch(b.init), cmdline: "console=tty0 " + kernelArgs("ttyS0", true, b.f.appendArgs),
		built: b.built, files: files}
	return writeBundle(b.path(installFile), installHeader(ispec), files)
}

func hashFile(f *payloadFile) error {
	if f.data != nil {
		sum := sha256.Sum256(f.data)
		f.size, f.sum = int64(len(f.data)), hex.EncodeToString(sum[:])
		return nil
	}
	r, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer r.Close()
	h := sha256.New()
	if f.size, err = io.Copy(h, r); err != nil {
		return fmt.Errorf("read %s: %w", f.path, err)
	}
	f.sum = hex.EncodeToString(h.Sum(nil))
	return nil
}

// writeBundle writes the header, the marker and the files to a temporary
// file beside path, then renames it, so an interrupted run leaves the old
// bundle or the new one.
func writeBundle(path, header string, files []payloadFile) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("install bundle: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = io.WriteString(tmp, header); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	for _, f := range files {
		if err = appendFile(tmp, f); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err = tmp.Chmod(0o755); err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Close()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// appendFile copies f to w, and refuses a file that changed since it
// was hashed.
func appendFile(w io.Writer, f payloadFile) error {
	if f.data != nil {
		_, err := w.Write(f.data)
		return err
	}
	r, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer r.Close()
	n, err := io.Copy(w, r)
	if err != nil {
		return err
	}
	if n != f.size {
		return fmt.Errorf("%s changed while the bundle was written (%d bytes, was %d)", f.path, n, f.size)
	}
	return nil
}

// unameArch is `uname -m` of the machines the bundle is for: init's ELF
// machine, else (a test's fake init) this build's.
func unameArch(init []byte) string {
	m := map[elf.Machine]string{elf.EM_X86_64: "x86_64", elf.EM_AARCH64: "aarch64", elf.EM_386: "i686", elf.EM_RISCV: "riscv64"}
	if f, err := elf.NewFile(bytes.NewReader(init)); err == nil {
		if a, ok := m[f.Machine]; ok {
			return a
		}
	}
	return map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "riscv64": "riscv64"}[runtime.GOARCH]
}
