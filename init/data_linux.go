package main

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"allium/rootfs"

	"golang.org/x/sys/unix"
)

// dataRoot is where the data root ended up.
type dataRoot struct {
	// Persistent is false when nothing written there survives a reboot.
	Persistent bool
	// Desc says where it lives, for `cloud info`.
	Desc string
	// Mounted is the mount point to unmount at shutdown, or "".
	Mounted string
	// Warning is set when the operator asked for something else.
	Warning string
}

// deviceWait bounds the wait for the data disk to appear: block devices
// show up as their driver probes, after the module loads.
var deviceWait = 10 * time.Second

// mountData puts the data root at rootfs.DataDir. spec comes from
// allium.data= or the baked config: "LABEL=x", "UUID=x", "/dev/x", a
// directory, or a directory on a partition, "UUID=x:/var/lib/allium"
// (kexec's takeover keeps the node's data in the old system's root
// filesystem, which is not mounted in the initramfs). With no spec, a VM gets a tmpfs (nothing persists) and an
// OS container uses the directory on its own root filesystem.
func mountData(k mounter, log *slog.Logger, root, spec string, container bool) dataRoot {
	dir := filepath.Join(root, rootfs.DataDir)
	if err := mkdirPrivate(dir); err != nil {
		log.Error("data: cannot make the data directory", "dir", dir, "err", err)
	}
	if spec == "" && container {
		return onRootFS(dir, "the container's root filesystem")
	}
	if spec == "" {
		return dataTmpfs(k, log, dir, "no data partition was named (allium.data=)")
	}
	if !strings.HasPrefix(spec, "/dev/") && strings.HasPrefix(spec, "/") {
		return dataDirectory(k, log, root, dir, spec)
	}
	if dev, sub, ok := strings.Cut(spec, ":/"); ok {
		return dataOnPartition(k, log, root, dir, dev, "/"+sub)
	}
	dev, err := findDevice(root, spec, deviceWait)
	if err != nil {
		return dataTmpfs(k, log, dir, fmt.Sprintf("data partition %s: %v", spec, err))
	}
	if err := k.Mount(dev, dir, "ext4", unix.MS_NOATIME, ""); err != nil {
		return dataTmpfs(k, log, dir, fmt.Sprintf("data partition %s (%s): %v", spec, dev, err))
	}
	log.Info("data: mounted", "device", dev, "spec", spec, "at", rootfs.DataDir)
	return dataRoot{Persistent: true, Desc: fmt.Sprintf("%s (%s)", filepath.Join("/", strings.TrimPrefix(dev, root)), spec), Mounted: dir}
}

// mkdirPrivate makes dir (0700) and any missing parents with the usual
// 0755, so that a parent it makes (/var, /var/lib on a bare root) does
// not lock out the unprivileged users, tor among them, that need to
// pass through it.
func mkdirPrivate(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

func onRootFS(dir, what string) dataRoot {
	return dataRoot{Persistent: !isVolatile(dir), Desc: rootfs.DataDir + " on " + what}
}

// dataDirectory bind-mounts a directory of an existing filesystem on the
// data root ("runs within a single partition").
func dataDirectory(k mounter, log *slog.Logger, root, dir, spec string) dataRoot {
	src := filepath.Join(root, spec)
	if filepath.Clean(spec) == rootfs.DataDir {
		return onRootFS(dir, "the root filesystem")
	}
	if err := mkdirPrivate(src); err != nil {
		return dataTmpfs(k, log, dir, fmt.Sprintf("data directory %s: %v", spec, err))
	}
	if err := k.Mount(src, dir, "", unix.MS_BIND, ""); err != nil {
		return dataTmpfs(k, log, dir, fmt.Sprintf("data directory %s: %v", spec, err))
	}
	return dataRoot{Persistent: !isVolatile(src), Desc: spec, Mounted: dir}
}

// dataOnPartition mounts the partition devSpec names on a staging
// directory, binds its directory sub on the data root, and detaches the
// staging mount: the bind keeps the filesystem mounted until the
// shutdown unmounts the data root, which then leaves it clean.
func dataOnPartition(k mounter, log *slog.Logger, root, dir, devSpec, sub string) dataRoot {
	spec := devSpec + ":" + sub
	if !filepath.IsAbs(sub) || filepath.Clean(sub) != sub || sub == "/" {
		return dataTmpfs(k, log, dir, fmt.Sprintf("data directory %s: want a clean absolute directory after the colon", spec))
	}
	dev, err := findDevice(root, devSpec, deviceWait)
	if err != nil {
		return dataTmpfs(k, log, dir, fmt.Sprintf("data partition %s: %v", spec, err))
	}
	stage := filepath.Join(root, "run/allium-data-partition")
	if err := os.MkdirAll(stage, 0o700); err != nil {
		return dataTmpfs(k, log, dir, fmt.Sprintf("data partition %s: %v", spec, err))
	}
	if err := k.Mount(dev, stage, "ext4", unix.MS_NOATIME, ""); err != nil {
		return dataTmpfs(k, log, dir, fmt.Sprintf("data partition %s (%s): %v", spec, dev, err))
	}
	defer k.Unmount(stage, unix.MNT_DETACH)
	src := filepath.Join(stage, sub)
	if err := mkdirPrivate(src); err != nil {
		return dataTmpfs(k, log, dir, fmt.Sprintf("data directory %s: %v", spec, err))
	}
	if err := k.Mount(src, dir, "", unix.MS_BIND, ""); err != nil {
		return dataTmpfs(k, log, dir, fmt.Sprintf("data directory %s: %v", spec, err))
	}
	log.Info("data: mounted", "device", dev, "dir", sub, "spec", spec, "at", rootfs.DataDir)
	return dataRoot{Persistent: true, Desc: fmt.Sprintf("%s on %s (%s)", sub, filepath.Join("/", strings.TrimPrefix(dev, root)), devSpec), Mounted: dir}
}

// dataTmpfs is the fallback: the node runs, and says loudly that nothing
// it is told will survive a reboot.
func dataTmpfs(k mounter, log *slog.Logger, dir, why string) dataRoot {
	msg := "persistence is OFF: " + why + "; the data root is a tmpfs and nothing will survive a reboot"
	log.Error("data: " + msg)
	mounted := ""
	if err := k.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700"); err != nil {
		log.Error("data: cannot mount a tmpfs either; using the directory as it is", "err", err)
	} else {
		mounted = dir
	}
	return dataRoot{Persistent: false, Desc: "tmpfs", Mounted: mounted, Warning: msg}
}

// isVolatile reports whether dir lives in memory.
func isVolatile(dir string) bool {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return false
	}
	return st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC
}

// findDevice waits up to wait for a block device matching spec:
// "LABEL=x" or "UUID=x" (by ext2/3/4 superblock) or "/dev/x".
func findDevice(root, spec string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		dev, err := matchDevice(root, spec)
		if err == nil || time.Now().After(deadline) {
			return dev, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func matchDevice(root, spec string) (string, error) {
	if strings.HasPrefix(spec, "/dev/") {
		p := filepath.Join(root, spec)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("no such device")
		}
		return p, nil
	}
	key, want, ok := strings.Cut(spec, "=")
	if !ok || (key != "LABEL" && key != "UUID") || want == "" {
		return "", fmt.Errorf("want LABEL=…, UUID=…, /dev/… or a directory")
	}
	names, _ := os.ReadDir(filepath.Join(root, "sys/class/block"))
	for _, n := range names {
		dev := filepath.Join(root, "dev", n.Name())
		label, uuid, err := readExtSuper(dev)
		if err != nil {
			continue
		}
		if (key == "LABEL" && label == want) || (key == "UUID" && strings.EqualFold(uuid, want)) {
			return dev, nil
		}
	}
	return "", fmt.Errorf("no ext4 filesystem with %s among %d block devices", spec, len(names))
}

// readExtSuper reads the label and UUID of an ext2/3/4 superblock.
func readExtSuper(dev string) (label, uuid string, err error) {
	f, err := os.Open(dev)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	return parseExtSuper(io.NewSectionReader(f, 1024, 1024))
}

// parseExtSuper parses the superblock (the 1024 bytes at offset 1024).
func parseExtSuper(r io.Reader) (label, uuid string, err error) {
	sb := make([]byte, 1024)
	if _, err := io.ReadFull(r, sb); err != nil {
		return "", "", err
	}
	if binary.LittleEndian.Uint16(sb[0x38:]) != 0xEF53 {
		return "", "", fmt.Errorf("not an ext2/3/4 filesystem")
	}
	u := hex.EncodeToString(sb[0x68:0x78])
	uuid = u[0:8] + "-" + u[8:12] + "-" + u[12:16] + "-" + u[16:20] + "-" + u[20:32]
	label = strings.TrimRight(string(sb[0x78:0x88]), "\x00")
	return label, uuid, nil
}
