package qemutests

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"allium/api"
)

// TestBootLifecycle boots an appliance with a data disk and takes it
// through what an operator does: info, a refused stranger, a reboot, a
// power-off from the API, a boot that finds the disk clean, and the
// ACPI power button.
func TestBootLifecycle(t *testing.T) {
	e := setup(t)
	t.Parallel()
	// loglevel=7 (after mkimage's loglevel=4, so it wins) puts the
	// kernel's ext4 info lines on the serial console; without it, the
	// check that no "recovery complete" line appears could never fail.
	a := newAppliance(t, e, "life", buildOpts{appendArgs: "loglevel=7"})

	v := a.boot(t, "boot1")
	n, took := v.waitNode(t, "a first answer", anyNode)
	t.Logf("life boot1: first answer %.1f s after QEMU started", took.Seconds())
	checkNode(t, n, api.Node{Name: "life", Environment: api.EnvVM, Persistent: true, BootCount: 1, Kernel: e.release})
	checkStrangerRefused(t, a)
	checkWrongNodeKey(t, a)
	checkTorRuns(t, a, v)
	checkIsolation(t, v)
	checkNodeCgroup(t, a, v)

	if r := a.cloud(t, "reboot", "life"); r.code != 0 || r.stdout != "life: rebooting\n" {
		t.Fatalf("cloud reboot life = exit %d, %q, want 0, %q", r.code, r.stdout, "life: rebooting\n")
	}
	n, took = v.waitNode(t, "boot_count 2 after cloud reboot", func(n api.Node) bool { return n.BootCount >= 2 })
	t.Logf("life boot1: answered again %.1f s after QEMU started, in the same QEMU process", took.Seconds())
	if n.BootCount != 2 {
		t.Errorf("cloud info life after one reboot: boot_count = %d, want 2", n.BootCount)
	}
	if log := readFile(v.serial); !strings.Contains(log, "shutdown: reboot") {
		t.Errorf("serial console of boot1 has no %q line, want init's orderly reboot", "shutdown: reboot")
	}

	if r := a.cloud(t, "poweroff", "life"); r.code != 0 || r.stdout != "life: powering off\n" {
		t.Fatalf("cloud poweroff life = exit %d, %q, want 0, %q", r.code, r.stdout, "life: powering off\n")
	}
	v.waitExit(t, exitWithin, "cloud poweroff")
	checkClean(t, a.dataImage(), "cloud poweroff")

	v = a.boot(t, "boot3")
	n, _ = v.waitNode(t, "a first answer after the power-off", anyNode)
	if n.BootCount != 3 {
		t.Errorf("cloud info life on the next boot: boot_count = %d, want 3 (the count lives on the data disk)", n.BootCount)
	}
	checkNoRecovery(t, readFile(v.serial))

	// The button's driver loads after the API answers (a late module):
	// a press before it is there reaches no one, as on real hardware.
	waitSerial(t, v, `msg="power button" device=`, 30*time.Second)
	v.hmp(t, "system_powerdown")
	v.waitExit(t, buttonExit, "system_powerdown")
	checkClean(t, a.dataImage(), "system_powerdown")
	if log := readFile(v.serial); !strings.Contains(log, "power button pressed") {
		t.Errorf("serial console of boot3 has no %q line, want init to have read the ACPI button", "power button pressed")
	}
}

// TestBootWithoutDataDisk boots an appliance built with --no-data: it must
// run, and say loudly that nothing persists.
func TestBootWithoutDataDisk(t *testing.T) {
	e := setup(t)
	t.Parallel()
	a := newAppliance(t, e, "nodata", buildOpts{noData: true})

	v := a.boot(t, "boot1")
	n, took := v.waitNode(t, "a first answer", anyNode)
	t.Logf("nodata boot1: first answer %.1f s after QEMU started", took.Seconds())
	checkNode(t, n, api.Node{Name: "nodata", Environment: api.EnvVM, Persistent: false, BootCount: 1, Kernel: e.release})
	if !hasWarning(n, "persist") {
		t.Errorf("cloud info nodata --json: warnings = %q, want one about persistence", n.Warnings)
	}
	if r := a.cloud(t, "info", "nodata"); r.code != 0 || !strings.Contains(r.stdout, "OFF") {
		t.Errorf("cloud info nodata = exit %d, %q, want 0 and persistence OFF", r.code, r.stdout)
	}

	if r := a.cloud(t, "poweroff", "nodata"); r.code != 0 {
		t.Fatalf("cloud poweroff nodata = exit %d, want 0", r.code)
	}
	v.waitExit(t, exitWithin, "cloud poweroff")
}

// checkIsolation: the probe (run once the API is up) finds every rung on
// the real kernel, and says why pivot_root is refused on the initramfs.
func checkIsolation(t *testing.T, v *vm) {
	t.Helper()
	n, _ := v.waitNode(t, "the isolation probe's report", func(n api.Node) bool { return n.Isolation != nil })
	iso := n.Isolation
	if iso.Highest != "cgroups" || iso.Cgroup != "v2" {
		t.Errorf("cloud info --json: isolation %s, cgroup %q, want cgroups and v2 (checks %+v)", iso.Highest, iso.Cgroup, iso.Checks)
	}
	for _, c := range iso.Checks {
		if c.Name == "pivot_root" && (c.OK || !strings.Contains(c.Why, "initramfs")) {
			t.Errorf("isolation check pivot_root = %+v, want refused because the root is the initramfs", c)
		}
	}
	if iso.Containers != "cgroups" || !iso.Limited || strings.Contains(iso.Unprotected, "memory") {
		t.Errorf("cloud info --json: containers get %s, limited %v, unprotected %q; want cgroups (every rung) with cgroup limits",
			iso.Containers, iso.Limited, iso.Unprotected)
	}
	// init and tor moved into their cgroup, which the node logs only once
	// that worked (else cloud info warns).
	waitSerial(t, v, `msg=cgroups version=2 base=/allium`, 30*time.Second)
	for _, w := range n.Warnings {
		if strings.Contains(w, "cgroup") {
			t.Errorf("cloud info warns %q, want the node's cgroups set up", w)
		}
	}
}

// checkNodeCgroup: once init and tor are in their cgroup, the node
// reports what that group uses, and the memory Protect split between it
// and the containers: plausible numbers, not exact ones.
func checkNodeCgroup(t *testing.T, a *appliance, v *vm) {
	t.Helper()
	n, _ := v.waitNode(t, "the node's cgroup", func(n api.Node) bool { return n.Cgroup != nil })
	c, m := *n.Cgroup, n.Memory
	t.Logf("%s: node cgroup %+v; memory %+v", a.name, c, m)
	if c.Path != "/allium/node" {
		t.Errorf("cloud info --json: cgroup path %q, want /allium/node", c.Path)
	}
	if c.Memory == 0 || c.Memory >= m.Total || c.MemoryPeak < c.Memory {
		t.Errorf("cloud info --json: node cgroup memory %d, peak %d, want in (0, total %d), peak at least that",
			c.Memory, c.MemoryPeak, m.Total)
	}
	if c.Pids < 2 { // init and tor, and init's threads
		t.Errorf("cloud info --json: node cgroup tasks %d, want 2 or more (init and tor)", c.Pids)
	}
	if c.Guaranteed == 0 || c.Guaranteed+c.ContainersMax != m.Total {
		t.Errorf("cloud info --json: node guaranteed %d, containers' cap %d, want them to split the total %d",
			c.Guaranteed, c.ContainersMax, m.Total)
	}
	if r := a.cloud(t, "info", a.name); r.code != 0 || !strings.Contains(r.stdout, "node cgroup: ") ||
		!strings.Contains(r.stdout, "guaranteed\n") {
		t.Errorf("cloud info %s = exit %d, %q, want 0 and a node cgroup line", a.name, r.code, r.stdout)
	}
}

// checkNode compares the fields of want that a boot determines.
func checkNode(t *testing.T, got, want api.Node) {
	t.Helper()
	if got.Name != want.Name {
		t.Errorf("cloud info %s --json: name = %q, want %q", want.Name, got.Name, want.Name)
	}
	if got.Environment != want.Environment {
		t.Errorf("cloud info %s --json: environment = %q, want %q", want.Name, got.Environment, want.Environment)
	}
	if got.Persistent != want.Persistent {
		t.Errorf("cloud info %s --json: persistent = %v, want %v (data %q)", want.Name, got.Persistent, want.Persistent, got.Data)
	}
	if got.BootCount != want.BootCount {
		t.Errorf("cloud info %s --json: boot_count = %d, want %d", want.Name, got.BootCount, want.BootCount)
	}
	if got.Kernel != want.Kernel {
		t.Errorf("cloud info %s --json: kernel = %q, want %q (the kernel QEMU booted)", want.Name, got.Kernel, want.Kernel)
	}
	if got.Memory.Total == 0 || got.Memory.InitRSS == 0 {
		t.Errorf("cloud info %s --json: memory = %+v, want a total and init's RSS", want.Name, got.Memory)
	}
}

func hasWarning(n api.Node, word string) bool {
	for _, w := range n.Warnings {
		if strings.Contains(strings.ToLower(w), word) {
			return true
		}
	}
	return false
}

// checkStrangerRefused: a client whose key the node never authorized is
// refused, although it pins the right node key.
func checkStrangerRefused(t *testing.T, a *appliance) {
	t.Helper()
	other := api.Config{Dir: t.TempDir()}
	if _, _, err := other.LoadOrCreateClientKey(); err != nil {
		t.Fatal(err)
	}
	alias, err := api.Config{Dir: a.config}.Alias(a.name)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.SaveAlias(alias); err != nil {
		t.Fatal(err)
	}
	r := a.cloudAs(t, other.Dir, "info", a.name)
	if r.code != 1 || !strings.Contains(r.stderr, "not authorized") {
		t.Errorf("cloud --config OTHER info %s = exit %d, stderr %q, want 1 and \"not authorized\"", a.name, r.code, r.stderr)
	}
}

// checkWrongNodeKey: by address, a wrong --node-key is refused and the
// right one works, so it is the key that was refused.
func checkWrongNodeKey(t *testing.T, a *appliance) {
	t.Helper()
	wrong, err := api.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	r := a.cloud(t, "info", a.addr(), "--node-key", api.FormatKey(wrong.Public().(ed25519.PublicKey)))
	if r.code != 1 || !strings.Contains(r.stderr, "presented a different key than --node-key pins") {
		t.Errorf("cloud info %s --node-key WRONG = exit %d, stderr %q, want 1 and the node key mismatch", a.addr(), r.code, r.stderr)
	}
	alias, err := api.Config{Dir: a.config}.Alias(a.name)
	if err != nil {
		t.Fatal(err)
	}
	if r := a.cloud(t, "info", a.addr(), "--node-key", alias.NodeKey); r.code != 0 {
		t.Errorf("cloud info %s --node-key RIGHT = exit %d, want 0", a.addr(), r.code)
	}
}

// checkNoRecovery: a boot after an orderly shutdown replays no journal
// and deletes no orphans. The ext4 mount line proves the console shows
// ext4's info lines at all.
func checkNoRecovery(t *testing.T, serial string) {
	t.Helper()
	if !strings.Contains(serial, "mounted filesystem") {
		t.Errorf("serial console has no ext4 %q line, want one (is loglevel=7 on the command line?)", "mounted filesystem")
	}
	for _, line := range strings.Split(serial, "\n") {
		line = strings.TrimRight(line, "\r")
		l := strings.ToLower(line)
		if strings.Contains(l, "ext4-fs") && (strings.Contains(l, "recover") || strings.Contains(l, "orphan")) {
			t.Errorf("serial console: %q, want no ext4 recovery or orphan lines after a clean shutdown", line)
		}
	}
}

// checkTorRuns waits for the node's tor to run under PID 1's control,
// publishing the onion the alias names. The guest is isolated, so tor
// cannot bootstrap: it runs and waits, and the node says so.
func checkTorRuns(t *testing.T, a *appliance, v *vm) {
	t.Helper()
	alias, err := api.Config{Dir: a.config}.Alias(a.name)
	if err != nil {
		t.Fatal(err)
	}
	n, took := v.waitNode(t, "tor running", func(n api.Node) bool {
		return n.Tor != nil && n.Tor.PID > 0 && (n.Tor.State == "running" || n.Tor.State == "publishing")
	})
	t.Logf("%s: tor %s %.1f s after QEMU started, RSS %d KiB, init RSS %d KiB", a.name, n.Tor.State, took.Seconds(), n.Tor.RSS>>10, n.Memory.InitRSS>>10)
	if alias.Onion == "" || n.Tor.Onion != alias.Onion {
		t.Errorf("the node's onion is %q, the alias says %q; want the same, known before the first boot", n.Tor.Onion, alias.Onion)
	}
	if n.TCP == "" || n.TCP == "off" {
		t.Errorf("node's TCP listener = %q, want it on", n.TCP)
	}
}

// waitSerial waits until the serial console holds want.
func waitSerial(t *testing.T, v *vm, want string, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); !strings.Contains(readFile(v.serial), want); time.Sleep(pollEvery) {
		if time.Now().After(deadline) {
			t.Fatalf("the serial console has no %q after %v", want, within)
		}
	}
}
