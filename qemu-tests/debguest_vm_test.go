package qemutests

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"allium/internal/testkit"
)

// sshWithin is how long a boot or a reboot of the Debian guest may take
// to answer ssh: systemd under TCG on a loaded 2-core machine is slow.
const sshWithin = 5 * time.Minute

// debGuest is a booted Debian 12 guest, for tests of what installs
// Allium over a real Debian (cloud install --ssh, install.sh). It runs
// on a qcow2 overlay of the cached image, so nothing it writes reaches
// the cache, with its NIC on a tap in a network namespace of the test's
// own: the guest reaches that namespace and nothing else, and only what
// runs in it reaches the guest.
//
// For a takeover test:
//
//	g := bootDebGuest(t)                     // ssh as root works when it returns
//	out, err := g.ssh(ctx, "uname -r")       // a command as root
//	g.sshConfig(t, home, "vps")              // `ssh vps` under HOME=home
//	cmd := g.cmd(ctx, cloudBin, "install", "--ssh", "vps", ...) // any host command, in the namespace
//	cmd.Env = append(os.Environ(), "HOME="+home)
//	g.inNetns(func() error { ... })          // Go code (an api.Client) dialing g.Addr
//	g.reset()                                // the reset button: the old OS comes back
//	g.waitBoot(ctx, oldBootID)               // ssh from a boot other than oldBootID
//	g.serialTail(), g.exited()
//
// The guest: Debian 12 (bookworm minbase, linux-image-cloud-amd64, GRUB
// on the MBR of /dev/vda, systemd, udev, ifupdown, sshd), hostname
// debguest, root by key only, console on ttyS0, 1024 MiB. Its NIC Dev
// (enp0s3) is configured static in /etc/network/interfaces: Addr/24 via
// Gateway, dns-nameservers Gateway (also in /etc/resolv.conf). Nothing
// answers at Gateway but the host side of the tap.
type debGuest struct {
	Netns   string // the network namespace QEMU and the tap are in
	Tap     string // the tap device in Netns, holding Gateway/24
	Addr    string // the guest's static address, 10.77.0.2
	Dev     string // the guest's NIC, as its /etc/network/interfaces names it (e.g. enp0s3)
	MAC     string // the NIC's MAC
	Gateway string // the guest's default gateway and nameserver: the tap's address
	Key     string // the private key that logs in as root
	Serial  string // the serial console's file (a reset or reboot appends to it)
	Disk    string // the qcow2 overlay the guest writes to

	dir        string // the test's directory for this guest
	knownHosts string
	qmpSock    string
	cmdline    string // the QEMU command line, as run
	start      time.Time
	proc       *os.Process
	done       chan struct{} // closed once QEMU has exited
	err        error         // cmd.Wait's; read after done is closed
}

// debGuestSetup skips tb unless the QEMU tier is on, it runs as root
// (the root tier too: network namespaces, tap devices, debootstrap) and
// the tools are here.
func debGuestSetup(tb testing.TB) {
	tb.Helper()
	if os.Getenv(enableVar) != "1" {
		tb.Skipf("QEMU tier off: set %s=1 (and %s=1, as root) to boot the Debian guest", enableVar, "ALLIUM_ROOT_TESTS")
	}
	testkit.NeedRoot(tb)
	for _, bin := range []string{qemu, "qemu-img", "debootstrap", "sfdisk", "mke2fs", "ssh", "ssh-keygen", "ip", "unshare"} {
		if _, err := exec.LookPath(bin); err != nil {
			tb.Skipf("Debian guest: %s is not installed (tools/deps.sh installs what is missing)", bin)
		}
	}
}

var netnsSeq atomic.Int32

// bootDebGuest boots a new overlay of the cached Debian image (building
// it first if need be) and waits until root can log in by ssh. QEMU is
// killed and the namespace deleted when tb ends; a failed test logs the
// serial console's tail.
func bootDebGuest(tb testing.TB) *debGuest {
	tb.Helper()
	debGuestSetup(tb)
	img := getDebImage(tb)
	dir := tb.TempDir()
	g := &debGuest{
		Netns: fmt.Sprintf("allium-dg-%d-%d", os.Getpid(), netnsSeq.Add(1)), Tap: "tap0",
		Addr: debAddr, Dev: img.dev, MAC: debMAC, Gateway: debGateway, Key: img.key,
		Serial: filepath.Join(dir, "serial.log"), Disk: filepath.Join(dir, "overlay.qcow2"),
		dir: dir, knownHosts: filepath.Join(dir, "known_hosts"), qmpSock: socketPath(tb, dir, "qmp.sock"),
		done: make(chan struct{}),
	}
	if err := runQuiet(context.Background(), "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", img.disk, g.Disk); err != nil {
		tb.Fatal(err)
	}
	g.makeNetns(tb)
	g.startQEMU(tb)
	ctx, cancel := context.WithTimeout(context.Background(), sshWithin)
	defer cancel()
	if err := g.waitSSH(ctx); err != nil {
		tb.Fatalf("debian guest: %v", err)
	}
	tb.Logf("debian guest: ssh root@%s answers %.1f s after QEMU started", g.Addr, time.Since(g.start).Seconds())
	return g
}

// makeNetns makes g's namespace with the tap in it; tb's cleanup
// deletes both.
func (g *debGuest) makeNetns(tb testing.TB) {
	tb.Helper()
	ns := g.Netns
	if err := runQuiet(context.Background(), "ip", "netns", "add", ns); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		runQuiet(context.Background(), "ip", "-n", ns, "link", "del", g.Tap) // persistent: gone with the namespace anyway
		if err := runQuiet(context.Background(), "ip", "netns", "del", ns); err != nil {
			tb.Errorf("debian guest cleanup: %v", err)
		}
	})
	for _, args := range [][]string{
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "tuntap", "add", "dev", g.Tap, "mode", "tap"},
		{"-n", ns, "addr", "add", g.Gateway + "/" + debPrefix, "dev", g.Tap},
		{"-n", ns, "link", "set", g.Tap, "up"},
	} {
		if err := runQuiet(context.Background(), "ip", args...); err != nil {
			tb.Fatal(err)
		}
	}
}

// startQEMU boots the overlay from SeaBIOS and GRUB, inside the
// namespace, logging the command line.
func (g *debGuest) startQEMU(tb testing.TB) {
	tb.Helper()
	args := append(debQEMUArgs(g.Serial, "file="+g.Disk+",format=qcow2"),
		"-netdev", "tap,id=n0,ifname="+g.Tap+",script=no,downscript=no",
		"-qmp", "unix:"+g.qmpSock+",server=on,wait=off")
	cmd := g.cmd(context.Background(), qemu, args...)
	g.cmdline = strings.Join(cmd.Args, " ")
	tb.Logf("debian guest: %s", g.cmdline)
	out, err := os.Create(filepath.Join(g.dir, "qemu.out"))
	if err != nil {
		tb.Fatal(err)
	}
	defer out.Close() // QEMU has its own copy
	cmd.Stdout, cmd.Stderr = out, out
	dieWithTest(cmd)
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("debian guest: serial console %s, last lines:\n%s", g.Serial, g.serialTail())
			tb.Logf("debian guest: QEMU's output:\n%s", tail(readFile(out.Name()), 20))
		}
	})
	g.start = time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatalf("%s: %v", g.cmdline, err)
	}
	g.proc = cmd.Process
	go func() { g.err = cmd.Wait(); close(g.done) }()
	tb.Cleanup(g.kill)
}

func (g *debGuest) kill() {
	if g.exited() {
		return
	}
	g.qmp("quit") // lets QEMU close its files; a kill follows if it does not
	select {
	case <-g.done:
		return
	case <-time.After(5 * time.Second):
	}
	g.proc.Kill()
	<-g.done
}

// exited reports whether QEMU has exited.
func (g *debGuest) exited() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// inNetns runs f on a thread in the guest's namespace: the sockets f
// opens (an api.Client's, say) reach the guest.
func (g *debGuest) inNetns(f func() error) error {
	ns, err := netns.GetFromName(g.Netns)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", g.Netns, err)
	}
	defer ns.Close()
	return testkit.InNetNS(ns, f)
}

// cmd is a host command run inside the guest's namespace: the only place
// the guest can be reached from.
func (g *debGuest) cmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", g.Netns, name}, args...)...)
}

// sshArgs log in as root with g's key, trusting the guest's host key the
// first time (into the test's own known_hosts), never asking anything.
func (g *debGuest) sshArgs() []string {
	return []string{"-F", "/dev/null", "-i", g.Key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile=" + g.knownHosts, "-o", "StrictHostKeyChecking=accept-new",
		"-o", "ConnectTimeout=5", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
		"-o", "LogLevel=ERROR", "root@" + g.Addr}
}

// ssh runs cmd as root in the guest and returns its stdout; the error
// carries the exit status and stderr.
func (g *debGuest) ssh(ctx context.Context, cmd string) (string, error) {
	c := g.cmd(ctx, "ssh", append(g.sshArgs(), "--", cmd)...)
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return string(out), fmt.Errorf("ssh root@%s %q: %w: %s", g.Addr, cmd, err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// sshConfig writes home/.ssh/config so that `ssh alias`, run with
// HOME=home inside g's namespace (g.cmd), logs in as root: for the real
// cloud install --ssh, which reads the user's ssh config.
func (g *debGuest) sshConfig(tb testing.TB, home, alias string) {
	tb.Helper()
	dir := filepath.Join(home, ".ssh")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	conf := fmt.Sprintf("Host %s\n\tHostName %s\n\tUser root\n\tIdentityFile %s\n\tIdentitiesOnly yes\n"+
		"\tUserKnownHostsFile %s\n\tStrictHostKeyChecking accept-new\n\tBatchMode yes\n\tConnectTimeout 5\n",
		alias, g.Addr, g.Key, filepath.Join(dir, "known_hosts"))
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// waitSSH waits until root can log in, QEMU exits or ctx ends.
func (g *debGuest) waitSSH(ctx context.Context) error {
	_, err := g.waitBoot(ctx, "")
	return err
}

// bootID is the guest's /proc/sys/kernel/random/boot_id: new on every
// boot, so comparing it says whether a reboot or reset happened.
func (g *debGuest) bootID(ctx context.Context) (string, error) {
	out, err := g.ssh(ctx, "cat /proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(out), err
}

// waitBoot polls ssh until the guest answers with a boot id other than
// old ("" takes any) and returns it; it fails when QEMU exits or ctx
// ends, saying what ssh said last.
func (g *debGuest) waitBoot(ctx context.Context, old string) (string, error) {
	last := "no answer yet"
	for {
		try, cancel := context.WithTimeout(ctx, 15*time.Second)
		id, err := g.bootID(try)
		cancel()
		switch {
		case err == nil && id != old:
			return id, nil
		case err == nil:
			last = "still the boot " + old
		default:
			last = err.Error()
		}
		select {
		case <-g.done:
			return "", fmt.Errorf("waiting for ssh: QEMU exited (%v); ssh said: %s", g.err, last)
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for ssh: %w; ssh said: %s", ctx.Err(), last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// reset presses the guest's reset button (QMP system_reset): no shutdown,
// whatever was not synced is lost.
func (g *debGuest) reset() error { return g.qmp("system_reset") }

// serialTail is the serial console's last lines, for failure messages.
func (g *debGuest) serialTail() string { return tail(readFile(g.Serial), 60) }

// qmp runs one QMP command without arguments and waits for its answer.
func (g *debGuest) qmp(command string) error {
	c, err := net.DialTimeout("unix", g.qmpSock, 5*time.Second)
	if err != nil {
		return fmt.Errorf("QMP %s: %w", g.qmpSock, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	if _, err := r.ReadBytes('\n'); err != nil { // the greeting
		return fmt.Errorf("QMP %s: greeting: %w", g.qmpSock, err)
	}
	for _, cmd := range []string{"qmp_capabilities", command} {
		if _, err := fmt.Fprintf(c, "{\"execute\":%q}\n", cmd); err != nil {
			return fmt.Errorf("QMP %s: %w", cmd, err)
		}
		if err := qmpAnswer(r); err != nil {
			if cmd == "quit" && errors.Is(err, io.EOF) {
				return nil // QEMU went before it answered
			}
			return fmt.Errorf("QMP %s: %w", cmd, err)
		}
	}
	return nil
}

// qmpAnswer reads lines until a return or an error, skipping events.
func qmpAnswer(r *bufio.Reader) error {
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return err
		}
		var m struct {
			Return json.RawMessage
			Error  *struct{ Class, Desc string }
		}
		if err := json.Unmarshal(line, &m); err != nil {
			return fmt.Errorf("%q: %w", line, err)
		}
		if m.Error != nil {
			return fmt.Errorf("%s: %s", m.Error.Class, m.Error.Desc)
		}
		if m.Return != nil {
			return nil
		}
	}
}
