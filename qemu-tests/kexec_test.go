package qemutests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"allium/api"
)

// installWithin bounds one cloud install: the copy, the install, the
// kexec and the node's boot, under TCG.
const installWithin = 6 * time.Minute

// takeover is a Debian guest and the appliance cloud install puts on it.
type takeover struct {
	g     *debGuest
	a     *appliance
	home  string // HOME for cloud and ssh: ~/.ssh/config has the Host "debvm"
	alias string // the ssh config's Host
}

func newTakeover(t *testing.T) *takeover {
	e := setup(t)
	g := bootDebGuest(t)
	a := newAppliance(t, e, "kx", buildOpts{noTor: true})
	k := &takeover{g: g, a: a, home: t.TempDir(), alias: "debvm"}
	g.sshConfig(t, k.home, k.alias)
	return k
}

// sshConfig is the ssh config with the Host alias: ssh reads the
// user's home from the password database, not $HOME, so cloud is told.
func (k *takeover) sshConfig() string { return filepath.Join(k.home, ".ssh", "config") }

// cloud runs the real cloud in the guest's namespace, with the test's
// ssh config and the appliance's client config.
func (k *takeover) cloud(ctx context.Context, args ...string) (string, error) {
	cmd := k.g.cmd(ctx, k.a.env.cloud, append([]string{"--config", k.a.config}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+k.home)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("cloud %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// node is cloud info NAME --json.
func (k *takeover) node(ctx context.Context) (api.Node, error) {
	out, err := k.cloud(ctx, "--timeout", "5s", "--json", "info", k.a.name)
	if err != nil {
		return api.Node{}, err
	}
	var n api.Node
	if err := json.Unmarshal([]byte(out), &n); err != nil {
		return n, fmt.Errorf("cloud info --json: %w\n%s", err, out)
	}
	return n, nil
}

// waitNodeBoot polls cloud info until the node answers with a boot count
// above after.
func (k *takeover) waitNodeBoot(t *testing.T, after uint64) api.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), firstAnswer+time.Minute)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		n, err := k.node(ctx)
		if err == nil && n.BootCount > after {
			return n
		}
		last = err
		time.Sleep(time.Second)
	}
	t.Fatalf("the node did not come back (boot > %d): %v\nserial:\n%s", after, last, k.g.serialTail())
	return api.Node{}
}

// install runs cloud install over ssh and checks the node it leaves.
func (k *takeover) install(t *testing.T, install string, args ...string) (api.Node, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), installWithin)
	defer cancel()
	out, err := k.cloud(ctx, append([]string{"install", k.a.name, "--ssh", k.alias, "--ssh-config", k.sshConfig()}, args...)...)
	if err != nil {
		t.Fatalf("%v\nserial:\n%s", err, k.g.serialTail())
	}
	t.Logf("cloud install %s:\n%s", strings.Join(args, " "), out)
	for _, want := range []string{"step  load", "step  switch", "kx: installed in", "install:"} {
		if !strings.Contains(out, want) {
			t.Errorf("cloud install printed no %q", want)
		}
	}
	n, err := k.node(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Install != install || !n.Persistent || !strings.Contains(n.Data, "/var/lib/allium") {
		t.Errorf("the node after cloud install %s: install %q, persistent %v, data %q; want %q on the Debian root's /var/lib/allium",
			strings.Join(args, " "), n.Install, n.Persistent, n.Data, install)
	}
	return n, out
}

// TestKexecTakeover takes a real Debian 12 (its own kernel and sshd, a
// static address, no DHCP server on its network) over with cloud
// install --ssh: the node answers at the address Debian had, with its
// data in Debian's root filesystem; a reset brings Debian back with its
// files; --permanent makes the node come up on every boot; cloud
// uninstall brings Debian back.
func TestKexecTakeover(t *testing.T) {
	k := newTakeover(t)
	ctx := t.Context()
	if _, err := k.g.ssh(ctx, "echo before > /root/marker && sync"); err != nil {
		t.Fatal(err)
	}
	dry, err := k.cloud(ctx, "install", k.a.name, "--ssh", k.alias, "--ssh-config", k.sshConfig(), "--dry-run")
	if err != nil || !strings.Contains(dry, "plan: kexec trial (kvm)") || !strings.Contains(dry, "ip=10.77.0.2::10.77.0.1:255.255.255.0::"+k.g.Dev+":off") {
		t.Fatalf("cloud install --dry-run: %v; want the kexec plan with the static ip=:\n%s", err, dry)
	}

	// The trial: kexec'd, the bootloader untouched.
	n, out := k.install(t, "kexec")
	if !strings.Contains(out, "the alias now leads to "+k.g.Addr+":") {
		t.Errorf("cloud install did not point the alias at %s", k.g.Addr)
	}
	boots := n.BootCount

	// A reset: Debian again, its files intact, the node's data beside.
	if err := k.g.reset(); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, sshWithin)
	defer cancel()
	if _, err := k.g.waitBoot(rctx, ""); err != nil {
		t.Fatalf("Debian after a reset: %v\nserial:\n%s", err, k.g.serialTail())
	}
	if out, err := k.g.ssh(ctx, "cat /root/marker; ls /var/lib/allium/state.db; ls /boot/allium; cat /etc/debian_version"); err != nil ||
		!strings.HasPrefix(out, "before\n/var/lib/allium/state.db\n") || !strings.Contains(out, "vmlinuz") {
		t.Errorf("Debian after the reset: %v\n%s; want its marker, the node's state.db and /boot/allium", err, out)
	}

	// --permanent: the node is GRUB's default, on every boot.
	n, _ = k.install(t, "grub", "--permanent")
	if n.BootCount <= boots {
		t.Errorf("boot count after the second install = %d, want more than %d: the data was not kept", n.BootCount, boots)
	}
	if _, err := k.cloud(ctx, "reboot", k.a.name); err != nil {
		t.Fatal(err)
	}
	n = k.waitNodeBoot(t, n.BootCount)
	if n.Install != "grub" {
		t.Errorf("after a reboot: install %q, want grub (the node is the default entry)", n.Install)
	}

	// cloud uninstall: Debian is the default again.
	if out, err := k.cloud(ctx, "uninstall", k.a.name); err != nil || !strings.Contains(out, "GRUB's default is the old system again") {
		t.Fatalf("cloud uninstall: %v\n%s", err, out)
	}
	uctx, cancel2 := context.WithTimeout(ctx, sshWithin)
	defer cancel2()
	if _, err := k.g.waitBoot(uctx, ""); err != nil {
		t.Fatalf("Debian after cloud uninstall: %v\nserial:\n%s", err, k.g.serialTail())
	}
	if out, err := k.g.ssh(ctx, "cat /root/marker; test -e /var/lib/allium/boot-old-system && echo marked"); err != nil || out != "before\nmarked\n" {
		t.Errorf("Debian after cloud uninstall: %v\n%s", err, out)
	}

	// A kernel that refuses kexec: refused by the preflight, Debian
	// untouched and still answering.
	before, err := k.g.ssh(ctx, "sysctl -qw kernel.kexec_load_disabled=1 && ls -l --time-style=+%s /boot/allium /etc/grub.d")
	if err != nil {
		t.Fatal(err)
	}
	out, err = k.cloud(ctx, "install", k.a.name, "--ssh", k.alias, "--ssh-config", k.sshConfig())
	if err == nil || !strings.Contains(out, "refusing: kexec: kexec is disabled (kernel.kexec_load_disabled=1") ||
		!strings.Contains(out, "refused (exit 1): see its findings above; nothing was changed") {
		t.Errorf("cloud install where kexec is disabled: %v, want a refusal naming it:\n%s", err, out)
	}
	if after, err := k.g.ssh(ctx, "ls -l --time-style=+%s /boot/allium /etc/grub.d"); err != nil || after != before {
		t.Errorf("a refused install changed /boot/allium or /etc/grub.d (%v):\n%s\nwas\n%s", err, after, before)
	}
}
