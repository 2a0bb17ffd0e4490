package qemutests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"allium/api"
	"allium/internal/testkit"
)

// TestPoison guards issue 10: an image running as root whose command was
// kill -TERM 1 powered the node off 3 s after its start, in the VM too,
// and kill -KILL -1 killed every other container and tor. The poison
// here tries every way (testkit.PoisonScript: signals to PID 1 and to -1,
// reboot -f, halt, poweroff, the node's unix socket) at each of its
// restarts, beside a neighbour running as nobody, on the appliance at
// the top rung and at the chroot rung (allium.isolation=chroot on the
// kernel command line). The node, tor and the neighbour keep running.
func TestPoison(t *testing.T) {
	e := setup(t)
	dir := t.TempDir()
	poison, neighbour := poisonImages(t, e, dir)
	for _, tc := range []struct{ name, rung, appendArgs string }{
		{"top", "cgroups", ""},
		{"chroot", "chroot", "allium.isolation=chroot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAppliance(t, e, "poison-"+tc.name, buildOpts{appendArgs: tc.appendArgs})
			n := &appNode{appliance: a}
			n.v = a.boot(t, "boot1")
			n.api = a.client(t)
			n.v.waitNode(t, "a first answer", anyNode)
			if r := n.cloud(t, "start", n.name, neighbour); r.code != 0 {
				t.Fatalf("cloud start %s neighbour.txz = exit %d, %s", n.name, r.code, r.stderr)
			}
			nb := n.waitContainer(t, "neighbour", "running", running)
			if nb.Isolation != tc.rung {
				t.Errorf("neighbour runs at %q, want %q", nb.Isolation, tc.rung)
			}
			node, _ := n.v.waitNode(t, "tor running", func(n api.Node) bool { return n.Tor != nil && n.Tor.PID > 0 })
			if r := n.cloud(t, "start", n.name, poison); r.code != 0 {
				t.Fatalf("cloud start %s poison.txz = exit %d, %s", n.name, r.code, r.stderr)
			}
			n.waitLogs(t, "poison", "two runs to their end, the socket unreachable", func(log string) bool {
				return strings.Count(log, "poisoned") >= 2 && strings.Contains(log, "socket /run/allium.sock: unreachable")
			})
			r := n.quiet(t, "logs", n.name, "poison")
			if strings.Contains(r.stdout, "REACHED") {
				t.Errorf("the poison reached a unix socket of the node:\n%s", r.stdout)
			}
			if n.v.exited() || strings.Contains(readFile(n.v.serial), "shutdown: begin") {
				t.Fatalf("the poison took the node down; console:\n%s", tail(readFile(n.v.serial), 40))
			}
			after, _ := n.container(t, "neighbour")
			if !running(after) || after.PID != nb.PID || after.Restarts != 0 {
				t.Errorf("neighbour after the poison = %+v, want it running undisturbed as %+v", after, nb)
			}
			now, _ := n.v.waitNode(t, "the node after the poison", anyNode)
			if now.Tor == nil || now.Tor.PID != node.Tor.PID || now.Tor.Restarts != node.Tor.Restarts {
				t.Errorf("tor after the poison = %+v, want pid %d and %d restarts as before", now.Tor, node.Tor.PID, node.Tor.Restarts)
			}
		})
	}
}

// poisonImages packs the poison (root, PoisonScript, restarting after
// 100 ms) and its neighbour (nobody, sleeping).
func poisonImages(t *testing.T, e env, dir string) (poison, neighbour string) {
	if _, err := os.Stat(busybox); err != nil {
		t.Skipf("QEMU tier: TestPoison needs %s (apt-get install busybox-static): %v", busybox, err)
	}
	root := busyboxRoot(t, filepath.Join(dir, "poison-root"))
	for _, a := range []string{"kill", "reboot", "halt", "poweroff", "sleep", "echo"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(testkit.BuildPoison(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "poison"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd, _ := json.Marshal([]string{"/bin/sh", "-c", testkit.PoisonScript})
	writeFile(t, filepath.Join(dir, "poison.json"), fmt.Sprintf(`{"version": 1, "name": "poison", "command": %s, "restart": {"delay": "100ms"}}`, cmd))
	poison = filepath.Join(dir, "poison.txz")
	pack(t, e, root, poison, "--manifest", filepath.Join(dir, "poison.json"))
	nroot := busyboxRoot(t, filepath.Join(dir, "neighbour-root"))
	neighbour = filepath.Join(dir, "neighbour.txz")
	pack(t, e, nroot, neighbour, "--user", "nobody", "--cmd", busybox+" sleep 1000000")
	return poison, neighbour
}

// TestBootLoop: a node powered off (QEMU killed) within seconds of a
// container's start, twice in a row, comes up without starting it; cloud
// ps shows it held with the reason, cloud info warns; cloud start clears
// it and starts it.
func TestBootLoop(t *testing.T) {
	e := setup(t)
	dir := t.TempDir()
	_, sleeper := poisonImages(t, e, dir)
	a := newAppliance(t, e, "bootloop", buildOpts{noTor: true})
	n := &appNode{appliance: a}
	for boot := 1; boot <= 2; boot++ {
		n.v = a.boot(t, fmt.Sprintf("boot%d", boot))
		n.api = a.client(t)
		n.v.waitNode(t, "a first answer", anyNode)
		if boot == 1 {
			if r := n.cloud(t, "start", n.name, sleeper); r.code != 0 {
				t.Fatalf("cloud start %s neighbour.txz = exit %d, %s", n.name, r.code, r.stderr)
			}
		}
		c := n.waitContainer(t, "neighbour", "running", running)
		n.waitEvents(t, "neighbour", slices.Repeat([]string{"start"}, boot)) // the start is recorded
		n.v.kill()                                                           // within seconds of the start
		t.Logf("boot %d: killed QEMU %v after the container's start", boot, time.Since(c.Started).Round(100*time.Millisecond))
	}
	n.v = a.boot(t, "boot3")
	n.api = a.client(t)
	n.v.waitConsole(t, restoredOK, 1)
	c, _ := n.container(t, "neighbour")
	if c.Held == "" || c.Desired != "running" || c.State != api.StateStopped || !strings.Contains(c.Held, "boot-loop") {
		t.Fatalf("cloud ps --json after two boots that ended soon after its start: %+v; want held by boot-loop protection, desired running, stopped", c)
	}
	if r := n.cloud(t, "ps", n.name); !strings.Contains(r.stdout, "held") || !strings.Contains(r.stdout, "boot-loop protection") {
		t.Errorf("cloud ps %s = %q, want the container held and why", n.name, r.stdout)
	}
	if r := n.cloud(t, "info", n.name); !strings.Contains(r.stdout, "boot-loop protection") {
		t.Errorf("cloud info %s = %q, want a warning about the held container", n.name, r.stdout)
	}
	if r := n.cloud(t, "start", n.name, "neighbour"); r.code != 0 {
		t.Fatalf("cloud start %s neighbour = exit %d, %s", n.name, r.code, r.stderr)
	}
	c = n.waitContainer(t, "neighbour", "running", running)
	if c.Held != "" {
		t.Errorf("after cloud start: held %q, want cleared", c.Held)
	}
	if r := n.cloud(t, "info", n.name); strings.Contains(r.stdout, "boot-loop protection") {
		t.Errorf("cloud info %s after cloud start still warns: %q", n.name, r.stdout)
	}
}
