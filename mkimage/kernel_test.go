package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeBzImage is the start of a bzImage: a setup header whose
// kernel_version points at version, and an lz4 payload (as Debian's).
func fakeBzImage(version string) []byte {
	b := make([]byte, 0x1000)
	copy(b[hdrMagicOff:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x206:], 0x020f) // boot protocol 2.15
	const at = 0x0800
	binary.LittleEndian.PutUint16(b[hdrVersionOff:], at-0x200)
	copy(b[at:], version+"\x00")
	setPayload(b, []byte{0x02, 0x21, 0x4c, 0x18})
	return b
}

// setPayload puts magic where b's setup header says its payload is:
// setup_sects 0 (which means 4), so the protected-mode code starts at
// 0xa00, and payload_offset 0x100 past that.
func setPayload(b, magic []byte) {
	b[hdrSetupSectsOff] = 0
	binary.LittleEndian.PutUint32(b[hdrPayloadOff:], 0x100)
	binary.LittleEndian.PutUint32(b[hdrPayloadLenOff:], 0x400)
	copy(b[0xb00:], magic)
}

func TestKernelRelease(t *testing.T) {
	tests := []struct {
		img  []byte
		want string // "" = an error
	}{
		{fakeBzImage("6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP"), "6.1.0-56-cloud-amd64"},
		{fakeBzImage("6.12.9"), "6.12.9"},
		{fakeBzImage(""), ""},
		{make([]byte, 0x1000), ""}, // no HdrS
		{[]byte("short"), ""},
	}
	for _, tt := range tests {
		got, err := kernelRelease(bytes.NewReader(tt.img))
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("kernelRelease(%q...) = %q, %v, want %q", tt.img[min(len(tt.img), 0x800):min(len(tt.img), 0x820)], got, err, tt.want)
		}
	}
}

// TestKernelReleaseReal reads the kernels installed in /boot, whose file
// names Debian derives from the same release string.
func TestKernelReleaseReal(t *testing.T) {
	paths, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(paths) == 0 {
		t.Skip("no /boot/vmlinuz-*: apt-get install linux-image-cloud-amd64 to run this test")
	}
	for _, p := range paths {
		got, err := readKernelRelease(p)
		if errors.Is(err, os.ErrPermission) {
			t.Skipf("%s: %v (Ubuntu keeps kernels 0600)", p, err)
		}
		if want := strings.TrimPrefix(filepath.Base(p), "vmlinuz-"); got != want || err != nil {
			t.Errorf("readKernelRelease(%s) = %q, %v, want %q", p, got, err, want)
		}
	}
}

func TestFindKernel(t *testing.T) {
	boot, mods := t.TempDir(), t.TempDir()
	for _, v := range []string{"6.1.0-9-amd64", "6.1.0-10-amd64", "6.12.0-1-amd64"} {
		os.WriteFile(filepath.Join(boot, "vmlinuz-"+v), fakeBzImage(v), 0o644)
	}
	// The newest has no modules, so it cannot be shipped.
	os.Mkdir(filepath.Join(mods, "6.1.0-9-amd64"), 0o755)
	os.Mkdir(filepath.Join(mods, "6.1.0-10-amd64"), 0o755)
	tests := []struct{ running, want string }{
		{"6.1.0-9-amd64", "vmlinuz-6.1.0-9-amd64"},   // the running kernel wins
		{"6.18.44-fc", "vmlinuz-6.1.0-10-amd64"},     // else the newest with modules
		{"", "vmlinuz-6.1.0-10-amd64"},               // 10 > 9 as numbers
		{"6.12.0-1-amd64", "vmlinuz-6.12.0-1-amd64"}, // running, even without modules
	}
	for _, tt := range tests {
		got, err := findKernel(boot, mods, tt.running)
		if err != nil || filepath.Base(got) != tt.want {
			t.Errorf("findKernel(running %q) = %q, %v, want %s", tt.running, got, err, tt.want)
		}
	}
	if _, err := findKernel(t.TempDir(), mods, ""); !errors.Is(err, errNoKernel) {
		t.Errorf("findKernel(empty /boot) = %v, want %v", err, errNoKernel)
	}
}

func TestVersionLess(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"6.1.0-9", "6.1.0-10", true},
		{"6.1.0-10", "6.1.0-9", false},
		{"6.9", "6.10", true},
		{"6.1", "6.1", false},
		{"6.1", "6.1.1", true},
		{"6.01", "6.1", false},
		{"6.1-amd64", "6.1-cloud", true},
	}
	for _, tt := range tests {
		if got := versionLess(tt.a, tt.b); got != tt.want {
			t.Errorf("versionLess(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
