package main

import (
	"fmt"
	"strings"
)

// Where disk.img keeps the boot files, as PyGrub and GRUB see them.
const (
	bootKernel = "/boot/vmlinuz"
	bootInitrd = "/boot/initrd.img"
	menuLst    = "/boot/grub/menu.lst" // GRUB legacy: every PyGrub reads it
	grubCfg    = "/boot/grub/grub.cfg" // GRUB 2: PyGrub prefers it when both exist
)

// bootEntry is one entry of the boot menus.
type bootEntry struct {
	Title string
	Args  string // the kernel command line
}

// bootEntries are disk.img's entries: first (the default) the Xen PV
// one, its console on hvc0; then the same node on a serial console, for
// QEMU, KVM or Xen HVM boots of the same disk.
func bootEntries(name string, noData bool, extra string) []bootEntry {
	return []bootEntry{
		{Title: "Allium " + name + " (Xen PV, console hvc0)", Args: kernelArgs("hvc0", noData, extra)},
		{Title: "Allium " + name + " (serial console ttyS0)", Args: kernelArgs("ttyS0", noData, extra)},
	}
}

// menuLstText is /boot/grub/menu.lst: GRUB legacy syntax, the subset
// PyGrub's GrubConfigFile parses.
func menuLstText(entries []bootEntry) string {
	return menuText("default 0\ntimeout 3\n", entries, func(e bootEntry) string {
		return fmt.Sprintf("title %s\n\troot (hd0,0)\n\tkernel %s %s\n\tinitrd %s\n",
			menuSafe(e.Title), bootKernel, e.Args, bootInitrd)
	})
}

// grubCfgText is /boot/grub/grub.cfg: the subset of GRUB 2 syntax
// PyGrub's Grub2ConfigFile parses (set, menuentry, linux, initrd).
func grubCfgText(entries []bootEntry) string {
	return menuText("set default=0\nset timeout=3\n", entries, func(e bootEntry) string {
		return fmt.Sprintf("menuentry '%s' {\n\tlinux %s %s\n\tinitrd %s\n}\n",
			strings.ReplaceAll(menuSafe(e.Title), "'", ""), bootKernel, e.Args, bootInitrd)
	})
}

// menuText is a menu file: a comment, the settings, then each entry
// after a blank line.
func menuText(settings string, entries []bootEntry, entry func(bootEntry) string) string {
	var b strings.Builder
	b.WriteString("# Written by mkimage appliance. PyGrub (Xen PV) boots the default entry.\n")
	b.WriteString(settings)
	for _, e := range entries {
		b.WriteString("\n" + entry(e))
	}
	return b.String()
}

// menuSafe keeps a title on one line.
func menuSafe(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
