package qemutests

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"allium/internal/testkit"
)

// TestDebianGuest checks the Debian guest the installer tests take over:
// it booted from its own disk through SeaBIOS and GRUB, is Debian 12 with
// the static address on the NIC ifupdown configured and no DHCP client,
// keeps what it synced across a hard reset, and comes back after a
// reboot. A takeover test relies on each of these.
func TestDebianGuest(t *testing.T) {
	debGuestSetup(t)
	t.Parallel()
	g := bootDebGuest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*sshWithin)
	defer cancel()

	// GRUB, not QEMU, loaded the kernel: its menu was on the serial console.
	if console := readFile(g.Serial); !strings.Contains(console, "GNU GRUB") {
		t.Errorf("serial console: no GNU GRUB menu, want the guest booted by GRUB from its MBR")
	}
	if v := g.must(t, ctx, "cat /etc/debian_version"); !strings.HasPrefix(v, "12.") {
		t.Errorf("cat /etc/debian_version = %q, want 12.x", v)
	}
	if c := g.must(t, ctx, "cat /proc/cmdline"); !strings.Contains(c, "BOOT_IMAGE=") || !strings.Contains(c, "console=ttyS0") {
		t.Errorf("/proc/cmdline = %q, want GRUB's (BOOT_IMAGE=...) with console=ttyS0", c)
	}
	g.checkNetwork(t, ctx)
	// Go code reaches the guest from inside the namespace too.
	err := g.inNetns(func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(g.Addr, "22"), 10*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		banner, err := bufio.NewReader(c).ReadString('\n')
		if !strings.HasPrefix(banner, "SSH-2.0-") {
			return fmt.Errorf("banner %q, %v: want SSH-2.0-", banner, err)
		}
		return nil
	})
	if err != nil {
		t.Errorf("inNetns: dial %s:22: %v", g.Addr, err)
	}

	// A hard reset keeps what was synced.
	old := g.must(t, ctx, "cat /proc/sys/kernel/random/boot_id")
	g.must(t, ctx, "echo kept >/root/before-reset && sync")
	if err := g.reset(); err != nil {
		t.Fatal(err)
	}
	old = g.waitNewBoot(t, ctx, old, "system_reset")
	if got := g.must(t, ctx, "cat /root/before-reset"); got != "kept" {
		t.Errorf("after system_reset: /root/before-reset = %q, want kept", got)
	}

	// A reboot over ssh: the connection may drop before ssh reports the
	// command's status, so only the new boot says it worked.
	g.ssh(ctx, "reboot")
	g.waitNewBoot(t, ctx, old, "ssh reboot")
	g.checkNetwork(t, ctx)
}

// checkNetwork: the static address and route from ifupdown, on the NIC
// the image names, and no DHCP client anywhere.
func (g *debGuest) checkNetwork(t *testing.T, ctx context.Context) {
	t.Helper()
	addr := g.must(t, ctx, "ip -4 -o addr show dev "+g.Dev)
	if want := "inet " + g.Addr + "/" + debPrefix; !strings.Contains(addr, want) {
		t.Errorf("ip -4 -o addr show dev %s = %q, want %s", g.Dev, addr, want)
	}
	if route := g.must(t, ctx, "ip -4 route show default"); !strings.Contains(route, "via "+g.Gateway+" dev "+g.Dev) {
		t.Errorf("ip -4 route show default = %q, want via %s dev %s", route, g.Gateway, g.Dev)
	}
	if ifaces := g.must(t, ctx, "cat /etc/network/interfaces"); !regexp.MustCompile(`iface ` + g.Dev + ` inet static`).MatchString(ifaces) {
		t.Errorf("/etc/network/interfaces = %q, want iface %s inet static", ifaces, g.Dev)
	}
	// ps from procps is not in minbase: read /proc.
	comms := strings.Fields(g.must(t, ctx, "cat /proc/[0-9]*/comm"))
	for _, dhcp := range []string{"dhclient", "dhcpcd", "udhcpc", "systemd-network"} {
		if slices.Contains(comms, dhcp) {
			t.Errorf("guest runs %s, want no DHCP client (processes: %v)", dhcp, comms)
		}
	}
}

// must runs cmd over ssh and returns its trimmed output, failing t if it
// fails.
func (g *debGuest) must(t testing.TB, ctx context.Context, cmd string) string {
	t.Helper()
	out, err := g.ssh(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// waitNewBoot waits for ssh to answer from a boot other than old, and
// returns the new boot's id.
func (g *debGuest) waitNewBoot(t testing.TB, ctx context.Context, old, after string) string {
	t.Helper()
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, sshWithin)
	defer cancel()
	id, err := g.waitBoot(wctx, old)
	if err != nil {
		t.Fatalf("after %s: %v", after, err)
	}
	t.Logf("debian guest: ssh answers from a new boot %.1f s after %s; systemd-analyze: %s", time.Since(start).Seconds(),
		after, g.must(t, ctx, "systemd-analyze | head -1"))
	return id
}

// BenchmarkDebianReboot measures the Debian guest's reboot: from `reboot`
// over ssh to ssh answering from the new boot, $ALLIUM_BENCH_ROUNDS times
// (default 3) whatever b.N is, with the load average beside each. The
// takeover benchmark compares its own kexec against this. It also prints
// the first boot's QEMU start to ssh, and how long getting the cached
// image took.
func BenchmarkDebianReboot(b *testing.B) {
	debGuestSetup(b)
	start := time.Now()
	getDebImage(b)
	image := time.Since(start)
	g := bootDebGuest(b)
	boot := time.Since(g.start)
	ctx := context.Background()
	rounds := 3
	if os.Getenv("ALLIUM_BENCH_ROUNDS") != "" {
		rounds = benchRounds(b)
	}
	fmt.Printf("Debian guest (TCG, %s MiB): image from the cache %.1f s; QEMU start to ssh %.1f s (load %s)\n",
		debMem, image.Seconds(), boot.Seconds(), testkit.LoadAverage())
	var secs []float64
	for i := range rounds {
		s, err := g.timeReboot(ctx)
		if err != nil {
			b.Fatalf("round %d: %v", i, err)
		}
		secs = append(secs, s)
		fmt.Printf("  reboot %d: ssh reboot to ssh from the new boot %.1f s (load %s)\n", i, s, testkit.LoadAverage())
	}
	slices.Sort(secs)
	b.ReportMetric(secs[len(secs)/2], "s/reboot")
	b.ReportMetric(boot.Seconds(), "s/boot")
}

// timeReboot is seconds from `reboot` over ssh to ssh answering from the
// new boot: for the takeover benchmark to measure the old OS's own
// reboot beside its kexec.
func (g *debGuest) timeReboot(ctx context.Context) (float64, error) {
	old, err := g.bootID(ctx)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	g.ssh(ctx, "reboot") // its status is lost with the connection
	wctx, cancel := context.WithTimeout(ctx, sshWithin)
	defer cancel()
	if _, err := g.waitBoot(wctx, old); err != nil {
		return 0, fmt.Errorf("after ssh reboot: %w", err)
	}
	return time.Since(start).Seconds(), nil
}
