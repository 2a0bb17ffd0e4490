package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"allium/init/apps"
	"allium/internal/durable"
	"allium/rootfs"
)

// How install.sh put the node on its machine: api.Node.Install.
const (
	installKexec    = "kexec"    // a trial kexec: the bootloader was never changed
	installGrub     = "grub"     // install.sh --permanent: the default GRUB entry
	installTakeover = "takeover" // an OS container's /sbin/init
)

// oldSystemMark, in the data root, tells install.sh's GRUB entry to
// leave the default to the system the node was installed over. The data
// root is a directory of that system's root filesystem, which GRUB
// reads.
const oldSystemMark = "boot-old-system"

// installedAs is how install.sh installed this node: allium.install= on
// the command line it kexec'd or GRUB booted, or in an OS container the
// original init it kept; "" when it was not installed over a system.
func (n *node) installedAs() string {
	if n.container {
		if _, err := os.Lstat(filepath.Join(n.root, "sbin/init.allium-orig")); err == nil {
			return installTakeover
		}
		return ""
	}
	switch v := n.cmdline["allium.install"]; v {
	case installKexec, installGrub:
		return v
	}
	return ""
}

// Uninstall undoes install.sh's change to the machine and reboots into
// the system the node was installed over. The node's data stays where it
// is (a directory of that system's root filesystem), so a second install
// finds it again.
func (n *node) Uninstall() (string, error) {
	var did string
	switch how := n.installedAs(); how {
	case installKexec:
		did = "a trial install (the bootloader was never changed): rebooting into the old system"
	case installGrub:
		if err := n.markOldSystem(); err != nil {
			return "", err
		}
		did = "GRUB's default is the old system again (" + rootfs.DataDir + "/" + oldSystemMark + "): rebooting into it"
	case installTakeover:
		var steps []string
		say := func(m string) {
			n.log.Info("uninstall: " + m)
			steps = append(steps, m)
		}
		if err := undoTakeover(n.root, say); err != nil {
			return "", fmt.Errorf("%w (done: %s); the node keeps running: try again, or see README: Troubleshooting", err, strings.Join(steps, "; "))
		}
		did = "the container's original /sbin/init is back (" + strings.Join(steps, "; ") + "): restarting the container into it"
	default:
		return "", errors.New("this node was not installed over another system by install.sh (no allium.install= on its command line): nothing to uninstall; reboot or power it off instead")
	}
	n.log.Info("uninstall", "install", n.installedAs(), "did", did)
	n.requestPower(powerReboot, apps.ShutdownOperator)
	return did, nil
}

// markOldSystem writes the mark GRUB's entry reads, durably: a reboot
// that does not see it would boot the node again.
func (n *node) markOldSystem() error {
	dir := filepath.Join(n.root, rootfs.DataDir)
	if !n.data.Persistent {
		return fmt.Errorf("the data root is not on the disk (%s): GRUB could not see the mark; nothing changed", n.data.Desc)
	}
	p := filepath.Join(dir, oldSystemMark)
	_, err := writeSynced(p, os.O_TRUNC, 0o644, strings.NewReader("written by cloud uninstall: GRUB boots the old system while this file exists\n"))
	if err == nil {
		err = durable.SyncDir(dir)
	}
	if err != nil {
		os.Remove(p)
		return fmt.Errorf("uninstall: write %s: %w; nothing changed", p, err)
	}
	return nil
}
