package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"allium/rootfs"
)

// diskFile is the PyGrub-bootable disk of an appliance directory.
const diskFile = "disk.img"

// extFeatures keeps disk.img readable by the old libext2fs of the PyGrub
// on a real Xen dom0: no metadata checksums, no 64-bit block numbers.
const extFeatures = "^metadata_csum,^64bit"

// bootDiskSpec is what goes on disk.img.
type bootDiskSpec struct {
	Path           string // DIR/disk.img
	Size           int64  // the whole disk, in bytes
	Kernel, Initrd string // the files to put at /boot/vmlinuz and /boot/initrd.img
	Menu, Grub     string // the texts of menu.lst and grub.cfg
	Force          bool   // make a new disk even when one exists (its data is lost)
}

// files maps each path on the disk to the bytes it must hold, read from
// the spec's files.
func (s bootDiskSpec) files() (map[string][]byte, error) {
	out := map[string][]byte{menuLst: []byte(s.Menu), grubCfg: []byte(s.Grub)}
	for dst, src := range map[string]string{bootKernel: s.Kernel, bootInitrd: s.Initrd} {
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("disk image: %w", err)
		}
		out[dst] = b
	}
	return out, nil
}

// bootDisk writes the disk: a raw MBR disk with one ext4 partition,
// labelled rootfs.DataLabel, holding /boot and, beside it, the node's
// data (the partition is the node's data root). A new disk is built in
// a staging directory by mke2fs -d: no root, no loop mount. An existing
// disk keeps its data: only its /boot files are replaced, by debugfs.
// It reports whether it made a new disk.
func bootDisk(ctx context.Context, s bootDiskSpec) (made bool, err error) {
	files, err := s.files()
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(s.Path); err == nil && !s.Force {
		return false, updateBootDisk(ctx, s.Path, files)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("disk image: %w", err)
	}
	var need int64 = partitionStart + 8<<20 // room for ext4's metadata and journal
	for _, b := range files {
		need += int64(len(b))
	}
	if s.Size < need {
		return false, fmt.Errorf("disk image: --data-size %s is too small for %s: it holds the kernel and the initramfs too; give it at least %s",
			humanSize(s.Size), diskFile, humanSize(need))
	}
	return true, newBootDisk(ctx, s, files)
}

func newBootDisk(ctx context.Context, s bootDiskSpec, files map[string][]byte) error {
	mkfs, err := lookTool("mke2fs", "e2fsprogs")
	if err != nil {
		return fmt.Errorf("disk image: %w, or pass --no-disk", err)
	}
	stage, err := os.MkdirTemp(filepath.Dir(s.Path), ".disk-stage.*")
	if err != nil {
		return fmt.Errorf("disk image: %w", err)
	}
	defer os.RemoveAll(stage)
	if err := os.Chmod(stage, 0o755); err != nil { // the data root's mode, as on data.img
		return fmt.Errorf("disk image: %w", err)
	}
	for p, b := range files {
		dst := filepath.Join(stage, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("disk image: %w", err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return fmt.Errorf("disk image: %w", err)
		}
	}
	tmp := filepath.Join(filepath.Dir(s.Path), "."+diskFile+".new")
	defer os.Remove(tmp) // fails harmlessly once renamed
	if err := writeDiskImage(ctx, mkfs, stage, tmp, s.Size); err != nil {
		return err
	}
	return os.Rename(tmp, s.Path)
}

// writeDiskImage makes path a sparse disk of size bytes: the MBR, then
// from partitionStart to the end an ext4 filesystem holding stage.
func writeDiskImage(ctx context.Context, mkfs, stage, path string, size int64) error {
	size -= size % sectorSize
	sectors := (size - partitionStart) / sectorSize
	if sectors > mbrMaxSectors {
		return fmt.Errorf("disk image: %s is larger than an MBR addresses (2 TiB)", humanSize(size))
	}
	boot, err := mbr(rand.Uint32(), mbrPartition{Active: true, Type: mbrLinuxType,
		Start: partitionStart / sectorSize, Sectors: uint32(sectors)})
	if err != nil {
		return fmt.Errorf("disk image: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("disk image: %w", err)
	}
	err = f.Truncate(size) // sparse: mke2fs writes only what it fills
	if err == nil {
		_, err = f.WriteAt(boot[:], 0)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("disk image: %w", err)
	}
	return runTool(ctx, "disk image", mkfs, "-q", "-F", "-t", "ext4", "-O", extFeatures,
		"-L", rootfs.DataLabel, "-d", stage,
		"-E", "offset="+strconv.Itoa(partitionStart)+",root_owner=0:0",
		path, strconv.FormatInt(sectors*sectorSize/1024, 10)+"k")
}

// partitionPath names the filesystem inside a disk image for e2fsprogs,
// which reads "FILE?offset=N" as the filesystem N bytes into FILE.
func partitionPath(disk string) string {
	return disk + "?offset=" + strconv.Itoa(partitionStart)
}

// updateBootDisk replaces the boot files of an existing disk and leaves
// everything else on it (the node's data) alone. It replays the journal
// first (e2fsck -p), since a node stopped by a power cut leaves one,
// then reads every file back.
func updateBootDisk(ctx context.Context, disk string, files map[string][]byte) error {
	e2fsck, err := lookTool("e2fsck", "e2fsprogs")
	if err != nil {
		return fmt.Errorf("disk image: %w", err)
	}
	debugfs, err := lookTool("debugfs", "e2fsprogs")
	if err != nil {
		return fmt.Errorf("disk image: %w", err)
	}
	fsPath := partitionPath(disk)
	// Exit status 1 is "errors corrected": the disk is fine now.
	cmd := exec.CommandContext(ctx, e2fsck, "-p", fsPath)
	if out, err := cmd.CombinedOutput(); err != nil && cmd.ProcessState.ExitCode() != 1 {
		return fmt.Errorf("disk image %s: e2fsck -p: %w: %s; to start over (the node's state is lost) pass --force-data",
			disk, err, strings.TrimSpace(string(out)))
	}
	stage, err := os.MkdirTemp(filepath.Dir(disk), ".disk-stage.*")
	if err != nil {
		return fmt.Errorf("disk image: %w", err)
	}
	defer os.RemoveAll(stage)
	var script strings.Builder
	script.WriteString("mkdir /boot\nmkdir /boot/grub\n") // an error when they exist, which debugfs reports and passes
	for p, b := range files {
		src := filepath.Join(stage, strings.ReplaceAll(strings.TrimPrefix(p, "/"), "/", "_"))
		if err := os.WriteFile(src, b, 0o644); err != nil {
			return fmt.Errorf("disk image: %w", err)
		}
		fmt.Fprintf(&script, "rm %s\nwrite %s %s\n", p, src, p)
	}
	cmdFile := filepath.Join(stage, "update.debugfs")
	if err := os.WriteFile(cmdFile, []byte(script.String()), 0o600); err != nil {
		return fmt.Errorf("disk image: %w", err)
	}
	if err := runTool(ctx, "disk image "+disk, debugfs, "-w", "-f", cmdFile, fsPath); err != nil {
		return err
	}
	return checkBootFiles(ctx, debugfs, disk, files)
}

// checkBootFiles reads each file back from the disk: debugfs reports a
// failed command on its output, not in its exit status.
func checkBootFiles(ctx context.Context, debugfs, disk string, files map[string][]byte) error {
	for p, want := range files {
		got, err := exec.CommandContext(ctx, debugfs, "-R", "cat "+p, partitionPath(disk)).Output()
		if err != nil || !bytes.Equal(got, want) {
			return fmt.Errorf("disk image %s: %s did not take the new file (read back %d bytes, want %d): "+
				"is the disk full? --force-data makes a new disk (the node's state is lost)", disk, p, len(got), len(want))
		}
	}
	return nil
}

// runTool runs an e2fsprogs program, its output in the error.
func runTool(ctx context.Context, what, prog string, args ...string) error {
	cmd := exec.CommandContext(ctx, prog, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %s: %w: %s", what, strings.Join(cmd.Args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
