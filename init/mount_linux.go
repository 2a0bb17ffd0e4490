package main

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"

	"allium/rootfs"

	"golang.org/x/sys/unix"
)

// mountTable mounts each entry of table under root, in order, and returns
// the targets it mounted, for unmounting in reverse. A target that is
// already mounted is fine: an OS container, or a kernel that mounted
// devtmpfs itself, got there first.
func mountTable(k mounter, log *slog.Logger, root string, table []rootfs.Mount) []string {
	var mounted []string
	for _, m := range table {
		target := filepath.Join(root, m.Target)
		if err := os.MkdirAll(target, 0o755); err != nil {
			log.Warn("mount: cannot make the mount point", "target", target, "err", err)
			continue
		}
		err := k.Mount(m.Source, target, m.FSType, m.Flags, m.Data)
		switch {
		case err == nil:
			mounted = append(mounted, target)
		case errors.Is(err, unix.EBUSY):
			// Already mounted (devtmpfs with DEVTMPFS_MOUNT, an OS
			// container's /proc): use what is there.
			log.Debug("mount: already mounted", "target", target)
		case m.Optional && (errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT)):
			log.Info("mount: not supported by this kernel", "fstype", m.FSType, "target", target)
		default:
			log.Warn("mount failed", "target", target, "fstype", m.FSType, "err", err)
		}
	}
	return mounted
}

// unmountAll unmounts targets in reverse order. A busy filesystem is
// remounted read-only, so its data is safe, and then detached. With
// quiet, for the early virtual filesystems (/dev is busy while init
// holds /dev/kmsg and the power button open, and that is harmless), a
// busy one is detached without a warning.
func unmountAll(k mounter, log *slog.Logger, targets []string, quiet bool) {
	for i := len(targets) - 1; i >= 0; i-- {
		t := targets[i]
		err := k.Unmount(t, 0)
		if err == nil {
			continue
		}
		if quiet {
			log.Debug("unmount: busy; detaching", "target", t, "err", err)
			k.Unmount(t, unix.MNT_DETACH)
			continue
		}
		log.Warn("unmount failed; remounting read-only", "target", t, "err", err)
		if err := k.Mount("", t, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			log.Warn("remount read-only failed", "target", t, "err", err)
		}
		if err := k.Unmount(t, unix.MNT_DETACH); err != nil {
			log.Warn("detach failed", "target", t, "err", err)
		}
	}
}
