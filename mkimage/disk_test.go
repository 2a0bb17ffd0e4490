package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestMBR(t *testing.T) {
	s, err := mbr(0xa1b2c3d4, mbrPartition{Active: true, Type: mbrLinuxType, Start: 2048, Sectors: 2095104})
	if err != nil {
		t.Fatal(err)
	}
	// The entry, worked out by hand: active, CHS 0/32/33 (LBA 2048 in
	// the 255x63 geometry), type 83, CHS 130/138/8 for LBA 2097151,
	// then LBA 2048 and 2095104 sectors, little-endian.
	want := []byte{0x80, 0x20, 0x21, 0x00, 0x83, 0x8a, 0x08, 0x82,
		0x00, 0x08, 0x00, 0x00, 0x00, 0xf8, 0x1f, 0x00}
	if got := s[446:462]; !bytes.Equal(got, want) {
		t.Errorf("mbr entry 1 = % x, want % x", got, want)
	}
	if !bytes.Equal(s[462:510], make([]byte, 48)) {
		t.Errorf("mbr entries 2-4 = % x, want zeros", s[462:510])
	}
	if s[510] != 0x55 || s[511] != 0xaa || binary.LittleEndian.Uint32(s[440:]) != 0xa1b2c3d4 {
		t.Errorf("mbr signature % x, disk id % x; want 55 aa, d4 c3 b2 a1", s[510:], s[440:444])
	}
	parts, err := parseMBR(s[:])
	if err != nil || len(parts) != 1 || parts[0] != (mbrPartition{true, mbrLinuxType, 2048, 2095104}) {
		t.Errorf("parseMBR(mbr(...)) = %+v, %v; want the one partition back", parts, err)
	}
}

func TestMBRErrors(t *testing.T) {
	p := mbrPartition{Type: mbrLinuxType, Start: 2048, Sectors: 1}
	for _, parts := range [][]mbrPartition{
		{p, p, p, p, p},
		{{Type: mbrLinuxType, Start: 0, Sectors: 1}},
		{{Type: mbrLinuxType, Start: 2048, Sectors: 0}},
		{{Type: mbrLinuxType, Start: 2048, Sectors: mbrMaxSectors}}, // past 2 TiB
	} {
		if _, err := mbr(1, parts...); err == nil {
			t.Errorf("mbr(%+v) = nil error, want one", parts)
		}
	}
	if _, err := parseMBR(make([]byte, 512)); err == nil {
		t.Error("parseMBR(zeros) = nil error, want no signature")
	}
}

// TestCHS: the 255x63 geometry, and FE FF FF past cylinder 1023, as
// fdisk writes.
func TestCHS(t *testing.T) {
	for lba, want := range map[uint32][]byte{
		0:        {0, 1, 0},
		2048:     {0x20, 0x21, 0},
		2097151:  {0x8a, 0x08, 0x82},
		16450559: {0xfe, 0xff, 0xff}, // cylinder 1023, head 254, sector 63: the last addressable
		16450560: {0xfe, 0xff, 0xff}, // cylinder 1024
		1 << 30:  {0xfe, 0xff, 0xff},
	} {
		if got := chs(lba); !bytes.Equal(got, want) {
			t.Errorf("chs(%d) = % x, want % x", lba, got, want)
		}
	}
}

func TestBootMenus(t *testing.T) {
	entries := bootEntries("web1", false, " ip=dhcp ")
	menu, grub := menuLstText(entries), grubCfgText(entries)
	const xen = "console=hvc0 panic=-1 loglevel=4 allium.data=LABEL=allium-data ip=dhcp"
	const serial = "console=ttyS0 panic=-1 loglevel=4 allium.data=LABEL=allium-data ip=dhcp"
	wantMenu := `# Written by mkimage appliance. PyGrub (Xen PV) boots the default entry.
default 0
timeout 3

title Allium web1 (Xen PV, console hvc0)
	root (hd0,0)
	kernel /boot/vmlinuz ` + xen + `
	initrd /boot/initrd.img

title Allium web1 (serial console ttyS0)
	root (hd0,0)
	kernel /boot/vmlinuz ` + serial + `
	initrd /boot/initrd.img
`
	if menu != wantMenu {
		t.Errorf("menuLstText() =\n%s\nwant\n%s", menu, wantMenu)
	}
	wantGrub := `# Written by mkimage appliance. PyGrub (Xen PV) boots the default entry.
set default=0
set timeout=3

menuentry 'Allium web1 (Xen PV, console hvc0)' {
	linux /boot/vmlinuz ` + xen + `
	initrd /boot/initrd.img
}

menuentry 'Allium web1 (serial console ttyS0)' {
	linux /boot/vmlinuz ` + serial + `
	initrd /boot/initrd.img
}
`
	if grub != wantGrub {
		t.Errorf("grubCfgText() =\n%s\nwant\n%s", grub, wantGrub)
	}
	if got := bootEntries("n", true, "")[0].Args; strings.Contains(got, "allium.data") {
		t.Errorf("bootEntries(noData)[0].Args = %q, want no allium.data", got)
	}
}

func TestMenuSafe(t *testing.T) {
	e := []bootEntry{{Title: "a\nb  c", Args: "x"}}
	if got := menuLstText(e); !strings.Contains(got, "title a b c\n") {
		t.Errorf("menuLstText(title with a newline) = %q, want it on one line", got)
	}
	e[0].Title = "it's"
	if got := grubCfgText(e); !strings.Contains(got, "menuentry 'its' {") {
		t.Errorf("grubCfgText(title with a quote) = %q, want the quote dropped", got)
	}
}

func TestKernelPayload(t *testing.T) {
	tests := []struct {
		magic []byte
		name  string
		xen   bool
	}{
		{[]byte{0x1f, 0x8b, 8}, "gzip", true},
		{[]byte{0xfd, '7', 'z', 'X', 'Z', 0}, "xz", true},
		{[]byte("BZh9"), "bzip2", true},
		{[]byte{0x5d, 0, 0, 0x80}, "lzma", true},
		{[]byte{0x89, 'L', 'Z', 'O', 0}, "lzo", true},
		{[]byte{0x02, 0x21, 0x4c, 0x18}, "lz4", true},
		{[]byte{0x7f, 'E', 'L', 'F'}, "none", true},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd}, "zstd", false},
		{[]byte{1, 2, 3, 4}, "", false},
	}
	for _, tt := range tests {
		b := fakeBzImage("6.1.0")
		setPayload(b, append(tt.magic, make([]byte, 6)...))
		name, xen, err := kernelPayload(bytes.NewReader(b))
		if name != tt.name || xen != tt.xen || (err == nil) != (tt.name != "") {
			t.Errorf("kernelPayload(payload % x) = %q, %v, %v; want %q, %v", tt.magic, name, xen, err, tt.name, tt.xen)
		}
	}
	old := fakeBzImage("2.6.18")
	binary.LittleEndian.PutUint16(old[hdrProtocolOff:], 0x0207)
	if _, _, err := kernelPayload(bytes.NewReader(old)); err == nil || !strings.Contains(err.Error(), "2.08") {
		t.Errorf("kernelPayload(protocol 2.07) = %v, want an error naming 2.08", err)
	}
}

// TestApplianceRefusesZstdKernel: a zstd kernel would build a disk.img
// that no Xen host boots, so the build stops before writing anything,
// and says what to do.
func TestApplianceRefusesZstdKernel(t *testing.T) {
	fx := newFixture(t)
	b := fakeBzImage(fakeRelease + " (test) #1")
	setPayload(b, []byte{0x28, 0xb5, 0x2f, 0xfd})
	if err := os.WriteFile(fx.kernel, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runMkimage(t, fx.args("--no-data", "--no-tor")...)
	if code != 1 || !strings.Contains(stderr, "zstd") || !strings.Contains(stderr, "--no-disk") {
		t.Errorf("mkimage appliance (zstd kernel) = exit %d, %q; want 1 naming zstd and --no-disk", code, stderr)
	}
	if _, err := os.Stat(fx.out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mkimage appliance (zstd kernel) made %s (%v), want nothing written", fx.out, err)
	}
	code, _, stderr = runMkimage(t, fx.args("--no-data", "--no-tor", "--no-disk")...)
	if code != 0 {
		t.Errorf("mkimage appliance --no-disk (zstd kernel) = exit %d, %q; want 0", code, stderr)
	}
}

// TestBootDisk builds a disk.img for real (mke2fs, no root), reads it
// back with e2fsprogs and util-linux, then rebuilds it and checks that
// the boot files change and the node's data stays.
func TestBootDisk(t *testing.T) {
	for _, tool := range []string{"mke2fs", "debugfs", "e2fsck", "dumpe2fs"} {
		if _, err := lookTool(tool, "e2fsprogs"); err != nil {
			t.Skipf("no disk image checks: %v", err)
		}
	}
	ctx := context.Background()
	dir := t.TempDir()
	s := bootDiskSpec{Path: filepath.Join(dir, diskFile), Size: 24 << 20,
		Kernel: filepath.Join(dir, "k"), Initrd: filepath.Join(dir, "i"), Menu: "menu 1\n", Grub: "grub 1\n"}
	writeFiles(t, dir, map[string]string{"k": "kernel 1", "i": "initrd 1"})
	if made, err := bootDisk(ctx, s); !made || err != nil {
		t.Fatalf("bootDisk(new) = %v, %v; want true, nil", made, err)
	}
	checkDiskFiles(t, s.Path, map[string]string{bootKernel: "kernel 1", bootInitrd: "initrd 1", menuLst: "menu 1\n", grubCfg: "grub 1\n"})
	checkDiskLayout(t, s.Path, 24<<20)
	debugfs(t, s.Path, "-w", "-R", "write "+s.Kernel+" /state.db") // the node's data

	writeFiles(t, dir, map[string]string{"k": "kernel 2, longer", "i": "initrd 2"})
	s.Menu, s.Grub = "menu 2\n", "grub 2\n"
	if made, err := bootDisk(ctx, s); made || err != nil {
		t.Fatalf("bootDisk(existing) = %v, %v; want false, nil", made, err)
	}
	checkDiskFiles(t, s.Path, map[string]string{bootKernel: "kernel 2, longer", bootInitrd: "initrd 2",
		menuLst: "menu 2\n", grubCfg: "grub 2\n", "/state.db": "kernel 1"})

	s.Force = true
	if made, err := bootDisk(ctx, s); !made || err != nil {
		t.Fatalf("bootDisk(Force) = %v, %v; want true, nil", made, err)
	}
	if got := debugfs(t, s.Path, "-R", "ls /"); strings.Contains(got, "state.db") {
		t.Errorf("bootDisk(Force): / = %s, want a new filesystem without state.db", got)
	}
	s.Path, s.Size = filepath.Join(dir, "small.img"), 4<<20
	if _, err := bootDisk(ctx, s); err == nil || !strings.Contains(err.Error(), "--data-size") {
		t.Errorf("bootDisk(4 MiB) = %v, want an error naming --data-size", err)
	}
}

func debugfs(t *testing.T, disk string, args ...string) string {
	t.Helper()
	tool, _ := lookTool("debugfs", "e2fsprogs")
	out, err := exec.Command(tool, append(args, partitionPath(disk))...).Output()
	if err != nil {
		t.Fatalf("debugfs %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

func checkDiskFiles(t *testing.T, disk string, want map[string]string) {
	t.Helper()
	for p, w := range want {
		if got := debugfs(t, disk, "-R", "cat "+p); got != w {
			t.Errorf("%s on %s = %q, want %q", p, disk, got, w)
		}
	}
}

// checkDiskLayout: one active Linux partition from 1 MiB to the end, as
// util-linux's partx reads it, holding an ext4 filesystem labelled
// allium-data without the features old PyGrubs cannot read.
func checkDiskLayout(t *testing.T, disk string, size int64) {
	t.Helper()
	b, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != size {
		t.Errorf("%s is %d bytes, want %d", disk, len(b), size)
	}
	parts, err := parseMBR(b[:512])
	want := mbrPartition{Active: true, Type: mbrLinuxType, Start: 2048, Sectors: uint32(size/512 - 2048)}
	if err != nil || len(parts) != 1 || parts[0] != want {
		t.Errorf("parseMBR(%s) = %+v, %v; want [%+v]", disk, parts, err, want)
	}
	if partx, err := exec.LookPath("partx"); err == nil {
		out, err := exec.Command(partx, "-g", "-o", "NR,START,SECTORS,TYPE", disk).Output()
		if got := strings.Join(strings.Fields(string(out)), " "); err != nil || got != "1 2048 47104 0x83" {
			t.Errorf("partx -g %s = %q, %v; want \"1 2048 47104 0x83\"", disk, got, err)
		}
	}
	dumpe2fs, _ := lookTool("dumpe2fs", "e2fsprogs")
	out, err := exec.Command(dumpe2fs, "-h", partitionPath(disk)).Output()
	if err != nil {
		t.Fatalf("dumpe2fs -h %s: %v", disk, err)
	}
	f := dumpe2fsHeader(string(out))
	if f["Filesystem volume name"] != "allium-data" {
		t.Errorf("label of %s = %q, want allium-data", disk, f["Filesystem volume name"])
	}
	feat := " " + f["Filesystem features"] + " "
	for _, bad := range []string{" metadata_csum ", " 64bit "} {
		if strings.Contains(feat, bad) {
			t.Errorf("features of %s = %s, want no%s(old PyGrubs cannot read it)", disk, feat, bad)
		}
	}
	if !strings.Contains(feat, " extent ") {
		t.Errorf("features of %s = %s, want ext4 (extent)", disk, feat)
	}
}

func dumpe2fsHeader(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}
