package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"allium/api"
	"allium/internal/testbin"
	"allium/internal/testkit/debian"
)

// sysvinitRecipe is the container's root: Debian with sysvinit, which
// runs in a plain set of namespaces, and a line of inittab that marks
// each of its boots in /original-init-ran.
var sysvinitRecipe = debian.Recipe{
	Suite: "bookworm", Variant: "minbase", Include: []string{"sysvinit-core"},
	Setup: `echo 'al:2345:once:/bin/sh -c "echo up >>/original-init-ran"' >>/etc/inittab`,
}

// TestOpenVZTakeover: a Debian tree with sysvinit, started as OpenVZ
// starts a container (pid, mount, uts, ipc and net namespaces, a veth,
// `/sbin/init -z`, container=openvz, no CAP_SYS_MODULE), runs
// install.sh --yes inside; the switch restarts the container (the test
// is its manager), Allium comes up, `cloud start` runs an app; the
// uninstall puts the old init back, and it starts again.
func TestOpenVZTakeover(t *testing.T) {
	requireRoot(t)
	for _, tool := range []string{"setpriv", "ip", "debootstrap"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("root tier: %s not found (tools/deps.sh)", tool)
		}
	}
	kernels, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(kernels) == 0 {
		t.Skip("no kernel in /boot for mkimage appliance (apt-get install linux-image-cloud-amd64)")
	}
	ctx := context.Background()
	tree, err := debian.Tree(ctx, sysvinitRecipe, t.Logf)
	if err != nil {
		t.Fatalf("debian tree: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "ct")
	if err := debian.Copy(tree, dir); err != nil {
		t.Fatal(err)
	}
	origInit, err := os.ReadFile(filepath.Join(dir, "sbin/init"))
	if err != nil {
		t.Fatal(err)
	}

	// The appliance: its install.sh in the container's /root, its client
	// config here, the alias pointed at the container's address.
	work := t.TempDir()
	out, cfgDir := filepath.Join(work, "out"), filepath.Join(work, "config")
	port := freePort(t)
	args := []string{"appliance", "--name", "ct1", "-o", out, "--config", cfgDir, "--kernel", kernels[len(kernels)-1],
		"--init", testbin.Path(t, "init"), "--port", strconv.Itoa(port), "--no-tor", "--no-data", "--no-disk"}
	if b, err := exec.Command(testbin.Path(t, "mkimage"), args...).CombinedOutput(); err != nil {
		t.Fatalf("mkimage %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	bundle, _ := os.ReadFile(filepath.Join(out, "install.sh"))
	if err := os.WriteFile(filepath.Join(dir, "root/install.sh"), bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := api.Config{Dir: cfgDir}
	alias, err := cfg.Alias("ct1")
	if err != nil {
		t.Fatal(err)
	}
	nodeKey, err := api.ParseKey(alias.NodeKey)
	if err != nil {
		t.Fatal(err)
	}
	client, err := cfg.ClientKey()
	if err != nil {
		t.Fatal(err)
	}

	boot := func() *containerNode {
		return startContainer(t, dir, port, client, nodeKey, ctOpts{env: "openvz", argv: vzctlArgv, openvz: true, subnet: 7})
	}
	waitFile := func(c *containerNode, p, what string) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
				return
			}
		}
		t.Fatalf("%s: /%s never appeared; console:\n%s", what, p, c.logs)
	}
	waitExit := func(c *containerNode, what string) {
		t.Helper()
		select {
		case <-c.done:
		case <-time.After(120 * time.Second):
			t.Fatalf("the container did not end within 120 s of %s", what)
		}
	}

	// 1. The old system, started the OpenVZ way.
	c := boot()
	waitFile(c, "original-init-ran", "sysvinit's first boot")
	alias.Address = c.addr + ":" + strconv.Itoa(port)
	if err := cfg.SaveAlias(alias); err != nil {
		t.Fatal(err)
	}

	// 2. The install, inside; its switch ends the container.
	inst := exec.Command("nsenter", "-t", strconv.Itoa(c.pid), "-p", "-m", "-u", "-i", "-n", "-r", "-w", "--",
		"/bin/sh", "/root/install.sh", "--yes")
	inst.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	b, err := inst.CombinedOutput()
	t.Logf("install.sh --yes:\n%s", b)
	if err != nil && !strings.Contains(string(b), "step  switch") {
		t.Fatalf("install.sh --yes in the container: %v", err)
	}
	for _, w := range []string{"ok    virt         OpenVZ container", "step  done", "step  switch       asking sysvinit"} {
		if !strings.Contains(string(b), w) {
			t.Errorf("install.sh --yes: output lacks %q", w)
		}
	}
	waitExit(c, "the switch (telinit 6)")

	// 3. The manager starts the container again: /sbin/init is Allium.
	c = boot()
	n := c.waitUp()
	if n.Environment != api.EnvContainer || n.Name != "ct1" {
		t.Errorf("GET /v1/node after the takeover = %+v, want node ct1 in a container", n)
	}
	c.waitLog(`api: listening" network=tcp`)
	data, _ := busyboxImage(t, "sleeper", "echo up; exec sleep 1000")
	image := filepath.Join(work, "sleeper.tar.gz")
	if err := os.WriteFile(image, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cl := exec.Command(testbin.Path(t, "cloud"), "--config", cfgDir, "start", "ct1", image)
	if b, err := cl.CombinedOutput(); err != nil {
		t.Fatalf("cloud start ct1 %s: %v\n%s", image, err, b)
	}
	got, err := c.tcp(client).Container(ctx, "sleeper")
	for deadline := time.Now().Add(30 * time.Second); err == nil && got.State != api.StateRunning && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		got, err = c.tcp(client).Container(ctx, "sleeper")
	}
	if err != nil || got.State != api.StateRunning {
		t.Errorf("the app after cloud start = %+v, %v; want running", got, err)
	}

	// 4. cloud uninstall: the node puts the old init back and reboots,
	// which ends the container.
	if n.Install != "takeover" {
		t.Errorf("GET /v1/node after the takeover: install %q, want takeover", n.Install)
	}
	os.Remove(filepath.Join(dir, "original-init-ran"))
	cl = exec.Command(testbin.Path(t, "cloud"), "--config", cfgDir, "uninstall", "ct1")
	if b, err := cl.CombinedOutput(); err != nil || !strings.Contains(string(b), "ct1: the container's original /sbin/init is back") {
		t.Fatalf("cloud uninstall ct1: %v\n%s", err, b)
	}
	waitExit(c, "the node's reboot after cloud uninstall")
	if b, _ := os.ReadFile(filepath.Join(dir, "sbin/init")); !bytes.Equal(b, origInit) {
		t.Errorf("/sbin/init after the uninstall is not the original init")
	}

	// 5. The old init is back, and starts.
	c = boot()
	waitFile(c, "original-init-ran", "sysvinit after the uninstall")
	for _, p := range []string{"sbin/init.allium-orig", "sbin/init.allium", "etc/allium"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); err == nil {
			t.Errorf("/%s still there after the uninstall", p)
		}
	}
}
