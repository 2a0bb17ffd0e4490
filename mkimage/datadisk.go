package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"allium/rootfs"
)

// lookTool finds a program in $PATH or, since a user's $PATH often lacks
// them, in /usr/sbin and /sbin.
func lookTool(name, pkg string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found: install it (apt-get install %s)", name, pkg)
}

// dataDisk makes path an ext4 filesystem of size bytes labelled
// rootfs.DataLabel, with no partition table, unless it exists and force
// is false. It reports whether it made one. The image is made beside path
// and renamed into place, so an interrupted run leaves the old disk or a
// whole new one.
func dataDisk(ctx context.Context, path string, size int64, force bool) (made bool, err error) {
	if _, err := os.Stat(path); err == nil && !force {
		return false, nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("data disk: %w", err)
	}
	mkfs, err := lookTool("mkfs.ext4", "e2fsprogs")
	if err != nil {
		return false, fmt.Errorf("data disk: %w, or pass --no-data", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return false, fmt.Errorf("data disk: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	err = tmp.Truncate(size)    // sparse: mkfs writes only the metadata
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("data disk: %w", err)
	}
	if err := runMkfs(ctx, mkfs, tmp.Name(), size); err != nil {
		return false, err
	}
	return true, os.Rename(tmp.Name(), path)
}

func runMkfs(ctx context.Context, mkfs, path string, size int64) error {
	cmd := exec.CommandContext(ctx, mkfs, "-q", "-F", "-L", rootfs.DataLabel,
		"-E", "root_owner=0:0", path, fmt.Sprintf("%dk", size/1024))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("data disk: %s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
