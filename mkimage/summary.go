package main

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"allium/api"
	"allium/hiddenservice"
	"allium/rootfs"
)

// summary tells the operator what was written and what to run next.
func (b *build) summary(w io.Writer) error {
	fmt.Fprintf(w, "appliance %s in %s:\n", b.f.name, b.f.out)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, row := range b.fileRows() {
		fi, err := os.Stat(b.path(row[0]))
		if err != nil {
			return fmt.Errorf("summary: %w", err)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", row[0], humanSize(fi.Size()), row[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	pub := b.nodeKey.Public().(ed25519.PublicKey)
	fmt.Fprintf(w, "node key:   %s\n", api.Fingerprint(pub))
	fmt.Fprintf(w, "onion:      %s\n", b.onionLine())
	fmt.Fprintf(w, "tor:        %s\n", b.torLine())
	fmt.Fprintf(w, "alias:      %s -> %s, in %s\n", b.alias.Name, b.aliasTargets(), b.cfg.Dir)
	fmt.Fprintf(w, "client key: %s\n", api.Fingerprint(b.clientKey.Public().(ed25519.PublicKey))+newOrKept(b.clientNew))
	if b.onion.client != nil {
		fmt.Fprintf(w, "client onion key: x25519 %s%s, in %s\n", hiddenservice.FormatClientPublicKey(b.onion.client.PublicKey()),
			newOrKept(b.onion.clientNew), b.cfg.OnionKeyPath())
	}
	fmt.Fprintf(w, "next:\n  mkimage qemu %s\n  %scloud info %s\n", shellQuote(b.f.out), b.configEnv(), b.f.name)
	return nil
}

// fileRows names each file of the appliance with a note about it.
func (b *build) fileRows() [][2]string {
	rows := [][2]string{
		{kernelFile, "kernel " + b.release + " from " + b.kernel},
		{initrdFile, fmt.Sprintf("%s, %d entries, %d modules (%s)",
			b.f.compress.value, b.entries, len(b.mods.order), humanSize(b.mods.bytes))},
	}
	if !b.f.noData {
		note := "kept: it holds the node's state (--force-data makes a new one)"
		if b.dataMade {
			note = "new ext4 filesystem, label " + rootfs.DataLabel
		}
		rows = append(rows, [2]string{dataFile, note})
	}
	if !b.f.noDisk {
		note := "kept (the node's state), its /boot updated"
		if b.diskMade {
			note = "new MBR disk, one ext4 partition labelled " + rootfs.DataLabel + ": /boot for PyGrub and the node's data"
		}
		note += "; kernel " + b.payload + "-compressed, which Xen's domain builder decodes"
		rows = append(rows, [2]string{diskFile, note})
	}
	rows = append(rows,
		[2]string{cmdlineFile, cmdline(b.f.noData, b.f.appendArgs)},
		[2]string{installFile, "the install bundle (kernel, initramfs, init); on a VPS: sh install.sh --dry-run"},
		[2]string{nodeJSONFile, "the baked node configuration"},
		[2]string{nodeKeyFile, "the node's TLS key" + newOrKept(b.nodeKeyNew)},
	)
	if b.onion.service != nil {
		rows = append(rows, [2]string{onionKeyFile, "the onion service's key" + newOrKept(b.onion.serviceNew)})
	}
	return rows
}

// onionLine says where the node's onion service is.
func (b *build) onionLine() string {
	if b.onion.service == nil {
		return "none (--no-tor): the API is on TCP only"
	}
	return b.onion.address() + newOrKept(b.onion.serviceNew)
}

// torLine says which tor went in and how much of the initramfs it is.
func (b *build) torLine() string {
	t := b.tor
	if t == nil {
		return "not in the image (--no-tor)"
	}
	return fmt.Sprintf("%s and %d libraries: %s of files, %s %s of %s",
		t.exe, t.libs, humanSize(t.bytes), humanSize(int64(t.zsize)), b.f.compress.value, initrdFile)
}

// aliasTargets are the alias's addresses.
func (b *build) aliasTargets() string {
	var to []string
	for _, a := range []string{b.alias.Address, b.alias.Onion} {
		if a != "" {
			to = append(to, a)
		}
	}
	if len(to) == 0 {
		return "(no address)"
	}
	return strings.Join(to, " and ")
}

func newOrKept(created bool) string {
	if created {
		return " (new)"
	}
	return " (kept)"
}

// configEnv is what `cloud` needs to find a config directory that is not
// its default.
func (b *build) configEnv() string {
	if def, err := api.ConfigDir(""); err == nil && def == b.cfg.Dir {
		return ""
	}
	return "ALLIUM_CONFIG=" + shellQuote(b.cfg.Dir) + " "
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
