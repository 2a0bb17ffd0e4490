package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"allium/rootfs"
)

const qemuBinary = "qemu-system-x86_64"

// execve replaces the process; a variable so tests can see what would run.
var execve = syscall.Exec

// qemuFlags are the flags of `mkimage qemu`.
type qemuFlags struct {
	port     int
	noData   bool
	disk     bool
	serial   string
	monitor  string
	mem      int
	noReboot bool
	accel    choiceFlag
	dryRun   bool
	isolate  bool
	forward  []string
}

func newQemuCmd() *cobra.Command {
	f := &qemuFlags{accel: choiceFlag{value: "tcg", choices: []string{"tcg", "kvm"}}}
	cmd := &cobra.Command{
		Use:   "qemu DIR [flags]",
		Short: "Boot an appliance under QEMU",
		Long: `qemu boots the appliance that 'mkimage appliance' wrote to DIR: its kernel,
initramfs and command line, the data disk as a virtio disk with serial
` + rootfs.DataLabel + `, and user-mode networking that forwards 127.0.0.1:PORT on
this machine to the node's API port.

With --disk, the disk is DIR/disk.img, the one disk a Xen PV host boots
through PyGrub or a provider takes as a custom image. QEMU has no PyGrub:
it boots DIR's vmlinuz and initrd.img directly (the same files as the
disk's /boot, which mkimage appliance keeps in step), and the node finds
its state on the disk's partition by its label, as it would on Xen.

It prints the exact command line to stderr, then becomes QEMU: Ctrl-C (or
'poweroff' from the API) ends it. The guest's serial console is on stdio
unless --serial names a file.

The accelerator is TCG (software emulation, a boot takes a few seconds).
--accel kvm is faster on a host with real VMX/SVM, but on nested-PVM hosts
(no vmx or svm in /proc/cpuinfo) KVM guests hang, so it is never the default.`,
		Example: `  mkimage qemu out/web1
  mkimage qemu out/web1 --port 17707 --serial out/web1/serial.log --no-reboot
  mkimage qemu out/web1 --monitor /tmp/web1.mon   # then: echo system_powerdown | socat - unix:/tmp/web1.mon
  mkimage qemu out/web1 --forward 8080:8080       # a container's port too
  mkimage qemu out/web1 --disk                    # the PyGrub disk.img as the node's disk
  mkimage qemu out/web1 --dry-run                 # print the command line only`,
		Args: exactArgs(1, "DIR, the appliance directory"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			return f.run(cmd.Context(), args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		}),
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.IntVar(&f.port, "port", 0, "the host port forwarded to the node's API port (default: the node's port, "+strconv.Itoa(rootfs.DefaultPort)+")")
	fl.BoolVar(&f.noData, "no-data", false, "boot without the data disk (state on tmpfs)")
	fl.BoolVar(&f.disk, "disk", false, "attach disk.img (the PyGrub disk, with the node's state) instead of data.img")
	fl.StringVar(&f.serial, "serial", "stdio", "where the serial console goes: stdio or a FILE")
	fl.StringVar(&f.monitor, "monitor", "", "serve the QEMU monitor on this unix socket path")
	fl.IntVar(&f.mem, "mem", 512, "guest memory in MiB")
	fl.BoolVar(&f.noReboot, "no-reboot", false, "exit QEMU when the guest reboots (or init dies, with panic=-1)")
	fl.Var(&f.accel, "accel", "accelerator; KVM hangs on nested-PVM hosts, so TCG is the default")
	fl.StringArrayVar(&f.forward, "forward", nil, "also forward 127.0.0.1:HOST to the node's port GUEST, as HOST:GUEST (repeatable), to reach a container")
	fl.BoolVar(&f.isolate, "isolate", false, "cut the guest off from every network but the forwarded ports (QEMU's restrict=on): its tor then reaches nothing")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the command line to stdout and exit")
	return cmd
}

// exactArgs is cobra.ExactArgs with a message that says what is wanted.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s wants %s, got %d arguments", cmd.CommandPath(), what, len(args))
		}
		return nil
	}
}

// qemuSpec is everything the QEMU command line depends on.
type qemuSpec struct {
	Dir       string // the appliance directory, absolute
	Cmdline   string // the kernel command line
	HostPort  int    // forwarded to GuestPort on 127.0.0.1; 0 = no forward
	GuestPort int    // the node's API port
	Data      bool   // attach DIR/data.img
	Disk      bool   // attach DIR/disk.img instead (the PyGrub disk); excludes Data
	Serial    string // "stdio" or a file
	Monitor   string // a unix socket path, or "" for none
	Mem       int    // MiB
	NoReboot  bool
	Accel     string // "tcg" or "kvm"
	// Forwards are more HOST->GUEST port pairs, for containers.
	Forwards [][2]int
	// Isolate restricts the guest to the forwarded ports: no DNS, no
	// outbound connections (QEMU's user-mode restrict=on).
	Isolate bool
}

// qemuArgs builds QEMU's argv (without the program name).
func qemuArgs(s qemuSpec) []string {
	args := []string{
		"-nodefaults", "-no-user-config", "-display", "none",
		"-machine", "q35,accel=" + s.Accel, "-cpu", "max", "-smp", "1",
		"-m", strconv.Itoa(s.Mem),
		"-kernel", filepath.Join(s.Dir, kernelFile),
		"-initrd", filepath.Join(s.Dir, initrdFile),
		"-append", s.Cmdline,
		"-serial", serialArg(s.Serial),
		// The cloud kernel has no e1000 driver: the NIC must be virtio.
		"-nic", nicArg(s.HostPort, s.GuestPort, s.Forwards, s.Isolate),
	}
	if disk := s.diskFile(); disk != "" {
		// cache=writeback, not unsafe: a guest's flush must reach the
		// file, or a clean-shutdown test proves nothing.
		args = append(args,
			"-drive", "file="+qemuEscape(filepath.Join(s.Dir, disk))+",format=raw,if=none,id=data,cache=writeback",
			"-device", "virtio-blk-pci,drive=data,serial="+rootfs.DataLabel)
	}
	if s.Monitor != "" {
		args = append(args, "-monitor", "unix:"+qemuEscape(s.Monitor)+",server,nowait")
	}
	if s.NoReboot {
		args = append(args, "-no-reboot")
	}
	return args
}

// diskFile is the disk the spec attaches, or "".
func (s qemuSpec) diskFile() string {
	switch {
	case s.Disk:
		return diskFile
	case s.Data:
		return dataFile
	}
	return ""
}

func serialArg(serial string) string {
	if serial == "stdio" {
		return "stdio"
	}
	return "file:" + serial
}

func nicArg(hostPort, guestPort int, more [][2]int, isolate bool) string {
	nic := "user,model=virtio-net-pci"
	if isolate {
		nic += ",restrict=on"
	}
	if hostPort > 0 && guestPort > 0 {
		nic += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", hostPort, guestPort)
	}
	for _, f := range more {
		nic += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", f[0], f[1])
	}
	return nic
}

// parseForwards reads --forward HOST:GUEST values.
func parseForwards(vals []string) ([][2]int, error) {
	var out [][2]int
	for _, v := range vals {
		h, g, ok := strings.Cut(v, ":")
		hp, err1 := strconv.Atoi(h)
		gp, err2 := strconv.Atoi(g)
		if !ok || err1 != nil || err2 != nil || hp < 1 || hp > 65535 || gp < 1 || gp > 65535 {
			return nil, usagef("--forward %q: want HOST:GUEST ports, e.g. 8080:8080", v)
		}
		out = append(out, [2]int{hp, gp})
	}
	return out, nil
}

// qemuEscape doubles commas, which QEMU's option syntax would otherwise
// take as separators.
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// stripParam removes every word starting with prefix from a command line.
func stripParam(cmdline, prefix string) string {
	var keep []string
	for _, w := range strings.Fields(cmdline) {
		if !strings.HasPrefix(w, prefix) {
			keep = append(keep, w)
		}
	}
	return strings.Join(keep, " ")
}

// commandLine renders argv for a shell, to log and to replay.
func commandLine(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

func (f *qemuFlags) run(ctx context.Context, dir string, stdout, stderr io.Writer) error {
	if f.port < 0 || f.port > 65535 {
		return usagef("--port %d: out of range: use 1-65535", f.port)
	}
	if f.mem < 64 {
		return usagef("--mem %d: too little: the appliance needs at least 64 (MiB)", f.mem)
	}
	if f.serial == "" {
		return usagef("--serial is empty: pass stdio or a file")
	}
	spec, err := f.spec(dir)
	if err != nil {
		return err
	}
	if spec.GuestPort == 0 {
		fmt.Fprintf(stderr, "mkimage: note: %s was built with --no-tcp: the node has no TCP API, so nothing is forwarded for it; reach it through its onion (cloud uses the alias's .onion address)\n", dir)
	}
	argv := append([]string{qemuBinary}, qemuArgs(spec)...)
	if f.dryRun {
		_, err := fmt.Fprintln(stdout, commandLine(argv))
		return err
	}
	fmt.Fprintln(stderr, "+ "+commandLine(argv))
	return execQemu(ctx, argv)
}

func execQemu(ctx context.Context, argv []string) error {
	path, err := exec.LookPath(qemuBinary)
	if err != nil {
		return fmt.Errorf("%s not found: install it (apt-get install qemu-system-x86)", qemuBinary)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := execve(path, argv, os.Environ()); err != nil {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	return nil
}

// spec reads the appliance directory into a qemuSpec.
func (f *qemuFlags) spec(dir string) (qemuSpec, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return qemuSpec{}, err
	}
	if f.disk && f.noData {
		return qemuSpec{}, usagef("--disk and --no-data contradict each other: disk.img holds the node's data")
	}
	need := []string{kernelFile, initrdFile, cmdlineFile}
	switch {
	case f.disk:
		need = append(need, diskFile)
	case !f.noData:
		need = append(need, dataFile)
	}
	for _, name := range need {
		if _, err := os.Stat(filepath.Join(abs, name)); err != nil {
			return qemuSpec{}, missingFile(dir, name, err)
		}
	}
	line, err := os.ReadFile(filepath.Join(abs, cmdlineFile))
	if err != nil {
		return qemuSpec{}, err
	}
	guest, err := nodePort(abs)
	if err != nil {
		return qemuSpec{}, err
	}
	s := qemuSpec{
		Dir: abs, Cmdline: strings.TrimSpace(string(line)),
		HostPort: f.port, GuestPort: guest, Data: !f.noData && !f.disk, Disk: f.disk,
		Serial: f.serial, Monitor: f.monitor, Mem: f.mem, NoReboot: f.noReboot, Accel: f.accel.value,
		Isolate: f.isolate,
	}
	if guest == 0 && f.port != 0 {
		return qemuSpec{}, usagef("--port %d: %s was built with --no-tcp, so the node has no TCP API port to forward to", f.port, dir)
	}
	if s.HostPort == 0 {
		s.HostPort = guest
	}
	if s.Forwards, err = parseForwards(f.forward); err != nil {
		return qemuSpec{}, err
	}
	if f.noData {
		s.Cmdline = stripParam(s.Cmdline, dataParam)
	}
	return s, nil
}

func missingFile(dir, name string, err error) error {
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if name == dataFile {
		return fmt.Errorf("no %s in %s: it was built with --no-data, so pass --no-data here too", name, dir)
	}
	if name == diskFile {
		return fmt.Errorf("no %s in %s: it was built with --no-disk; rebuild it without --no-disk", name, dir)
	}
	return fmt.Errorf("no %s in %s: build the appliance first (mkimage appliance --name NAME -o %s)", name, dir, dir)
}

// nodePort is the API port the node listens on, from DIR/node.json: 0
// when its TCP listener is off, rootfs.DefaultPort when there is no
// node.json (a directory put together by hand).
func nodePort(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, nodeJSONFile))
	if errors.Is(err, fs.ErrNotExist) {
		return rootfs.DefaultPort, nil
	}
	if err != nil {
		return 0, err
	}
	c, err := rootfs.ParseNodeConfig(b)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", filepath.Join(dir, nodeJSONFile), err)
	}
	return c.ListenPort(), nil
}
