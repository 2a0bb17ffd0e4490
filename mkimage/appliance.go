package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"allium/api"
	"allium/rootfs"
)

// The files of an appliance directory.
const (
	kernelFile   = "vmlinuz"
	initrdFile   = "initrd.img"
	dataFile     = "data.img"
	cmdlineFile  = "cmdline"
	nodeKeyFile  = "node.key"
	onionKeyFile = "onion.key"
	nodeJSONFile = "node.json" // a copy of the baked NodeConfig, for `mkimage qemu`
)

// applianceFlags are the flags of `mkimage appliance`.
type applianceFlags struct {
	name, out        string
	kernel, modules  string
	init             string
	kexec            string
	compress         choiceFlag
	port             int
	noTCP            bool
	noData           bool
	noDisk           bool
	forceData        bool
	dataSize         sizeFlag
	appendArgs       string
	config, address  string
	portSet, addrSet bool
	tor, torrc       string
	noTor            bool
}

func newApplianceCmd() *cobra.Command {
	f := &applianceFlags{
		dataSize: 1 << 30,
		compress: choiceFlag{value: "gzip", choices: strings.Split(compressionNames(), "|")},
	}
	cmd := &cobra.Command{
		Use:   "appliance --name NAME -o DIR [flags]",
		Short: "Build an appliance: kernel, initramfs, data disk, keys and alias",
		Long: `appliance writes, into DIR:

  vmlinuz     the kernel (--kernel; default /boot/vmlinuz-$(uname -r), else the
              newest /boot/vmlinuz-* whose modules are in /lib/modules)
  initrd.img  the initramfs: /init, /etc/allium (node.json, node.key,
              onion.key, authorized_keys, modules.order), /etc/passwd and
              /etc/group (root and ` + rootfs.TorUser + `, the user tor runs as), the
              kernel modules it needs, and tor: the build host's /usr/sbin/tor
              (or --tor) with its loader and shared libraries at their paths
  data.img    an ext4 data disk labelled ` + rootfs.DataLabel + `, kept when it exists
  disk.img    the same node as one raw MBR disk for Xen PV (PyGrub) or a
              provider's custom image: one ext4 partition labelled
              ` + rootfs.DataLabel + ` holding /boot (vmlinuz, initrd.img, grub/menu.lst,
              grub/grub.cfg) and the node's data; kept when it exists, with
              its /boot files replaced (--no-disk: none)
  cmdline     the kernel command line
  install.sh  the install bundle: a POSIX sh script with vmlinuz, initrd.img
              and init appended (sizes and sha256 recorded); on a VPS,
              'sh install.sh --dry-run' checks the machine and prints the plan
  node.key    the node's TLS key, reused on every rebuild so the node keeps
              its identity and the alias stays valid
  onion.key   the onion service's key, likewise reused, so the .onion
              address is known before the first boot and never changes
  node.json   a copy of the baked node configuration

and, on the client side, the client's TLS key and x25519 onion key (made on
first use, shared by all nodes; both go into the node's authorized_keys) and
the alias NAME with the node's TCP address and .onion address, so that
'cloud info NAME' reaches the node. It needs no root.`,
		Example: `  # Build web1 with the running kernel, then boot it:
  mkimage appliance --name web1 -o out/web1
  mkimage qemu out/web1

  # A specific kernel, zstd, a 4 GB data disk, the API on port 8443:
  mkimage appliance --name web2 -o out/web2 --kernel /boot/vmlinuz-6.1.0-56-cloud-amd64 \
      --compress zstd --data-size 4G --port 8443

  # No data disk (state on tmpfs), a client config somewhere else:
  mkimage appliance --name scratch -o /tmp/scratch --no-data --config /tmp/allium-test

  # Onion only (no TCP listener), a tor built elsewhere, bridges from a file:
  mkimage appliance --name hidden1 -o out/hidden1 --no-tcp --tor /opt/tor/bin/tor --torrc bridges.conf

  # TCP only, no tor in the image:
  mkimage appliance --name lan1 -o out/lan1 --no-tor`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			f.portSet = cmd.Flags().Changed("port")
			f.addrSet = cmd.Flags().Changed("address")
			return f.run(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		}),
	}
	f.register(cmd)
	return cmd
}

func (f *applianceFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVar(&f.name, "name", "", "the node's name, and the alias 'cloud' reaches it by (required)")
	fl.StringVarP(&f.out, "output", "o", "", "the directory to write the appliance to (required)")
	fl.StringVar(&f.kernel, "kernel", "", "the kernel (bzImage) to ship (default: see above)")
	fl.StringVar(&f.modules, "modules", "", "that kernel's module directory (default /lib/modules/RELEASE, RELEASE read from the kernel)")
	fl.StringVar(&f.init, "init", "", "the init binary (default: the file 'init' beside the mkimage executable)")
	fl.StringVar(&f.kexec, "kexec", "", "install.sh's static kexec helper (default: the file 'kexec' beside the mkimage executable)")
	fl.Var(&f.compress, "compress", "initramfs compression")
	fl.IntVar(&f.port, "port", 0, "the node's API TCP port (0 = "+strconv.Itoa(rootfs.DefaultPort)+")")
	fl.BoolVar(&f.noTCP, "no-tcp", false, "switch the node's TCP API listener off: it is reached through its onion")
	fl.BoolVar(&f.noData, "no-data", false, "no data disk: the node keeps its state on tmpfs")
	fl.Var(&f.dataSize, "data-size", "the data disk's size (512M, 1G, 2G...)")
	fl.BoolVar(&f.forceData, "force-data", false, "replace an existing data.img and disk.img with empty ones (destroys the node's state)")
	fl.BoolVar(&f.noDisk, "no-disk", false, "no disk.img (the PyGrub disk for Xen PV)")
	fl.StringVar(&f.appendArgs, "append", "", "more kernel command line")
	fl.StringVar(&f.config, "config", "", "the client config directory (default $ALLIUM_CONFIG, else ~/.config/allium)")
	fl.StringVar(&f.address, "address", "", "HOST:PORT the alias points at (default 127.0.0.1:PORT, for mkimage qemu)")
	fl.StringVar(&f.tor, "tor", "", "the tor binary to bundle, static or dynamic (default "+rootfs.TorExe+" of this machine)")
	fl.BoolVar(&f.noTor, "no-tor", false, "no tor and no onion service: the node serves TCP only")
	fl.StringVar(&f.torrc, "torrc", "", "a file of torrc lines the node's tor appends to its own (bridges, a private network)")
}

// check validates the flags and fills in what follows from them.
func (f *applianceFlags) check() error {
	if f.name == "" {
		return usagef("--name is required: the node's name, e.g. --name web1")
	}
	if err := api.ValidName(f.name); err != nil {
		return usagef("--name: %w", err)
	}
	if f.out == "" {
		return usagef("-o/--output is required: the directory to write the appliance to")
	}
	if f.port < 0 || f.port > 65535 {
		return usagef("--port %d: out of range: use 1-65535 (0 = %d)", f.port, rootfs.DefaultPort)
	}
	if f.noTCP && f.portSet {
		return usagef("--no-tcp and --port contradict each other: pass one")
	}
	if f.noTCP && f.addrSet {
		return usagef("--no-tcp and --address contradict each other: a node without a TCP listener has no TCP address")
	}
	if f.noData && f.forceData {
		return usagef("--no-data and --force-data contradict each other: pass one")
	}
	if err := f.checkTor(); err != nil {
		return err
	}
	if f.noTCP {
		f.port = -1
	}
	return nil
}

// build carries one `mkimage appliance` from step to step.
type build struct {
	f      *applianceFlags
	stderr io.Writer

	kernel, release, modDir string
	init                    []byte
	initPath                string
	kexecPath               string // "" when there is none: the bundle cannot kexec
	nodeKey, clientKey      ed25519.PrivateKey
	nodeKeyNew, clientNew   bool
	onion                   onionKeys
	tor                     *torBundle // nil with --no-tor
	torrc                   []string
	built                   time.Time
	cfg                     api.Config
	mods                    moduleSet
	entries                 int
	dataMade                bool
	diskMade                bool
	payload                 string // the kernel's compression
	alias                   api.Alias
}

func (f *applianceFlags) run(ctx context.Context, stdout, stderr io.Writer) error {
	if err := f.check(); err != nil {
		return err
	}
	b := &build{f: f, stderr: stderr, built: time.Now().UTC().Truncate(time.Second)}
	steps := []func(context.Context) error{
		b.findKernel, b.checkKernel, b.readInit, b.findKexec, b.findTor, b.makeDir, b.loadKeys, b.loadOnionKeys,
		b.writeInitrd, b.writeKernel, b.writeCmdline, b.writeInstall, b.writeDataDisk, b.writeBootDisk, b.saveAlias,
	}
	for _, step := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := step(ctx); err != nil {
			return err
		}
	}
	return b.summary(stdout)
}

func (b *build) path(name string) string { return filepath.Join(b.f.out, name) }

func (b *build) warnf(format string, args ...any) {
	fmt.Fprintf(b.stderr, "mkimage: warning: "+format+"\n", args...)
}

func (b *build) makeDir(context.Context) error {
	if err := os.MkdirAll(b.f.out, 0o755); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	return nil
}

// loadKeys loads or makes the node's key (in DIR, so a rebuild keeps the
// node's identity) and the client's key (in the client config).
func (b *build) loadKeys(context.Context) (err error) {
	b.nodeKey, b.nodeKeyNew, err = api.LoadOrCreateKey(b.path(nodeKeyFile))
	if err != nil {
		return fmt.Errorf("node key: %w: delete it to make a new one (the node gets a new identity)", err)
	}
	dir, err := api.ConfigDir(b.f.config)
	if err != nil {
		return err
	}
	b.cfg = api.Config{Dir: dir}
	b.clientKey, b.clientNew, err = b.cfg.LoadOrCreateClientKey()
	if err != nil {
		return fmt.Errorf("client key in %s: %w", dir, err)
	}
	return nil
}

// cmdline is the kernel command line of an appliance booted by QEMU or
// kexec: its console on the serial port.
func cmdline(noData bool, extra string) string { return kernelArgs("ttyS0", noData, extra) }

// kernelArgs is the kernel command line with the console on console.
func kernelArgs(console string, noData bool, extra string) string {
	s := "console=" + console + " panic=-1 loglevel=4"
	if !noData {
		s += " " + dataParam + "LABEL=" + rootfs.DataLabel
	}
	if extra = strings.TrimSpace(extra); extra != "" {
		s += " " + extra
	}
	return s
}

// dataParam is the kernel parameter naming the data partition.
const dataParam = "allium.data="

func (b *build) writeCmdline(context.Context) error {
	line := cmdline(b.f.noData, b.f.appendArgs) + "\n"
	return writeOut(b.path(cmdlineFile), []byte(line), 0o644)
}

func (b *build) writeKernel(context.Context) error {
	k, err := os.ReadFile(b.kernel)
	if err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	return writeOut(b.path(kernelFile), k, 0o644)
}

func (b *build) writeDataDisk(ctx context.Context) (err error) {
	if b.f.noData {
		return nil
	}
	b.dataMade, err = dataDisk(ctx, b.path(dataFile), int64(b.f.dataSize), b.f.forceData)
	return err
}

// checkKernel refuses, before anything is written, a kernel that Xen's
// domain builder could not boot from disk.img.
func (b *build) checkKernel(context.Context) (err error) {
	if b.f.noDisk {
		return nil
	}
	b.payload, err = checkXenKernel(b.kernel)
	return err
}

// writeBootDisk writes disk.img, the disk PyGrub boots on Xen PV, or
// updates the boot files of the one there.
func (b *build) writeBootDisk(ctx context.Context) (err error) {
	if b.f.noDisk {
		return nil
	}
	entries := bootEntries(b.f.name, b.f.noData, b.f.appendArgs)
	b.diskMade, err = bootDisk(ctx, bootDiskSpec{
		Path: b.path(diskFile), Size: int64(b.f.dataSize),
		Kernel: b.path(kernelFile), Initrd: b.path(initrdFile),
		Menu: menuLstText(entries), Grub: grubCfgText(entries),
		Force: b.f.forceData,
	})
	return err
}

func (b *build) saveAlias(context.Context) error {
	addr := b.f.address
	if !b.f.addrSet && b.f.port >= 0 {
		addr = "127.0.0.1:" + strconv.Itoa(rootfs.NodeConfig{Port: b.f.port}.ListenPort())
	}
	bundle, err := filepath.Abs(b.path(installFile))
	if err != nil {
		return err
	}
	b.alias = api.Alias{Name: b.f.name, Address: addr, Onion: b.onion.address(),
		NodeKey: api.FormatKey(b.nodeKey.Public().(ed25519.PublicKey)), Bundle: bundle}
	if err := b.cfg.SaveAlias(b.alias); err != nil {
		return fmt.Errorf("alias %s in %s: %w", b.f.name, b.cfg.Dir, err)
	}
	return nil
}

// writeOut writes one output file atomically, so an interrupted run
// leaves the old file or the new one.
func writeOut(path string, data []byte, perm os.FileMode) error {
	if err := api.WriteFileAtomic(path, data, perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
