package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Offsets in an x86 bzImage's setup header
// (Documentation/arch/x86/boot.rst).
const (
	hdrMagicOff   = 0x202 // "HdrS"
	hdrVersionOff = 0x20e // u16: kernel_version, a pointer less 0x200
	hdrVersionMax = 0x8000
)

// errNoKernel is returned when /boot has no usable kernel.
var errNoKernel = errors.New("no kernel found in /boot: install linux-image-cloud-amd64 or pass --kernel")

// kernelRelease reads the release ("6.1.0-56-cloud-amd64") from a bzImage:
// the first word of the version string the setup header points at. The
// file name may lie; the header names the modules the kernel will accept.
func kernelRelease(r io.ReaderAt) (string, error) {
	hdr, err := setupHeader(r, 0x210)
	if err != nil {
		return "", err
	}
	ptr := int64(binary.LittleEndian.Uint16(hdr[hdrVersionOff:]))
	if ptr == 0 || ptr > hdrVersionMax {
		return "", fmt.Errorf("bzImage: kernel_version pointer %#x: out of range", ptr)
	}
	buf := make([]byte, 256)
	n, err := r.ReadAt(buf, ptr+0x200)
	if n == 0 {
		return "", fmt.Errorf("bzImage: reading the version string: %w", err)
	}
	s, _, _ := bytes.Cut(buf[:n], []byte{0})
	f := strings.Fields(string(s))
	if len(f) == 0 {
		return "", errors.New("bzImage: empty version string")
	}
	return f[0], nil
}

// setupHeader reads the first n bytes of a bzImage, checking its magic.
func setupHeader(r io.ReaderAt, n int) ([]byte, error) {
	hdr := make([]byte, n)
	if _, err := r.ReadAt(hdr, 0); err != nil {
		return nil, fmt.Errorf("not a bzImage: reading its setup header: %w", err)
	}
	if string(hdr[hdrMagicOff:hdrMagicOff+4]) != "HdrS" {
		return nil, errors.New("not a bzImage: no \"HdrS\" at 0x202")
	}
	return hdr, nil
}

// readKernelRelease is kernelRelease of the file at path.
func readKernelRelease(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("kernel: %w", err)
	}
	defer f.Close()
	rel, err := kernelRelease(f)
	if err != nil {
		return "", fmt.Errorf("kernel %s: %w", path, err)
	}
	return rel, nil
}

// runningRelease is `uname -r`, or "" where there is no such thing.
func runningRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// findKernel picks the kernel to ship: boot/vmlinuz-RUNNING if it exists,
// else the newest boot/vmlinuz-* whose modules are installed under
// modRoot/VERSION.
func findKernel(boot, modRoot, running string) (string, error) {
	if running != "" {
		p := filepath.Join(boot, "vmlinuz-"+running)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	paths, err := filepath.Glob(filepath.Join(boot, "vmlinuz-*"))
	if err != nil {
		return "", err
	}
	var found []string
	for _, p := range paths {
		v := strings.TrimPrefix(filepath.Base(p), "vmlinuz-")
		if fi, err := os.Stat(filepath.Join(modRoot, v)); err == nil && fi.IsDir() {
			found = append(found, p)
		}
	}
	if len(found) == 0 {
		return "", errNoKernel
	}
	sort.Slice(found, func(i, j int) bool { return versionLess(found[j], found[i]) })
	return found[0], nil
}

// versionLess orders strings as versions: runs of digits compare as
// numbers, so 6.10.0 comes after 6.9.0.
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := isDigit(a[0]), isDigit(b[0])
		if da && db {
			na, ra := splitDigits(a)
			nb, rb := splitDigits(b)
			if na != nb {
				return len(na) < len(nb) || (len(na) == len(nb) && na < nb)
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// splitDigits splits s after its leading digits, dropping leading zeros.
func splitDigits(s string) (digits, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return strings.TrimLeft(s[:i], "0"), s[i:]
}
