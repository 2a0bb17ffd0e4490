package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"allium/api"
	"allium/init/netup"
	"allium/rootfs"

	"golang.org/x/sys/unix"
)

// testRoot lays out a fake machine: baked config, a module list for the
// running kernel, a kernel command line, and block devices.
type testRoot struct {
	t    *testing.T
	dir  string
	keys string
}

func newTestRoot(t *testing.T, cmdline string) *testRoot {
	t.Helper()
	r := &testRoot{t: t, dir: t.TempDir()}
	key, _ := api.NewKey()
	r.keys = string(api.FormatAuthorizedKeys([]api.AuthorizedKey{{Key: key.Public().(ed25519.PublicKey), Name: "admin"}}))
	r.write(rootfs.NodeConfigFile, `{"name":"web1"}`)
	r.write(rootfs.AuthorizedKeysFile, r.keys)
	r.write(rootfs.ModulesOrderFile, "release "+kernelRelease()+"\nkernel/a.ko\nkernel/b.ko\nkernel/xen-c.ko xen\nkernel/d.ko late\n")
	r.write("proc/cmdline", cmdline)
	r.write("proc/self/status", "Name:\tinit\nCapEff:\t000001ffffffffff\n")
	return r
}

func (r *testRoot) write(name, content string) {
	p := filepath.Join(r.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		r.t.Fatal(err)
	}
}

// disk adds a block device whose ext4 superblock carries label.
func (r *testRoot) disk(name, label string) {
	sb := make([]byte, 2048)
	binary.LittleEndian.PutUint16(sb[1024+0x38:], 0xEF53)
	copy(sb[1024+0x78:], label)
	r.write("dev/"+name, string(sb))
	os.MkdirAll(filepath.Join(r.dir, "sys/class/block", name), 0o755)
}

// bootNode boots a node over root with a fake kernel and a fake network.
func bootNode(t *testing.T, r *testRoot, args []string) (*node, *fakeKernel, <-chan netup.Config, *bytes.Buffer) {
	t.Helper()
	k := &fakeKernel{root: r.dir}
	var logs bytes.Buffer
	n := newNode(testLogger(&logs), k, r.dir)
	nets := make(chan netup.Config, 1)
	n.boot(args, func(ctx context.Context, cfg netup.Config, resolv string) (netup.State, error) {
		nets <- cfg
		return netup.State{}, nil
	})
	t.Cleanup(func() {
		if n.db != nil {
			n.db.Close()
		}
	})
	return n, k, nets, &logs
}

func TestBootVM(t *testing.T) {
	r := newTestRoot(t, "console=ttyS0 allium.data=LABEL=allium-data ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off\n")
	r.disk("vdb", "other")
	r.disk("vdc", "allium-data")
	n, k, nets, logs := bootNode(t, r, nil)
	calls := k.log()

	var mounts []string
	for _, m := range rootfs.Mounts {
		mounts = append(mounts, "mount "+m.FSType+" "+m.Source+" "+m.Target)
	}
	if got := calls[:len(mounts)]; !slices.Equal(got, mounts) {
		t.Errorf("boot: first calls = %q, want the mount table in order %q", got, mounts)
	}
	for _, want := range []string{
		"reboot 0x0", // CAD off, before anything can be pressed
		"load /lib/modules/" + kernelRelease() + "/kernel/a.ko",
		"load /lib/modules/" + kernelRelease() + "/kernel/b.ko",
		"mount ext4 /dev/vdc " + rootfs.DataDir,
	} {
		if !slices.Contains(calls, want) {
			t.Errorf("boot: no %q in %q", want, calls)
		}
	}
	if indexOf(calls, "load /lib/modules/"+kernelRelease()+"/kernel/b.ko") < indexOf(calls, "load /lib/modules/"+kernelRelease()+"/kernel/a.ko") {
		t.Errorf("boot: modules loaded out of order: %q", calls)
	}
	if indexOf(calls, "load /lib/modules/"+kernelRelease()+"/kernel/xen-c.ko") >= 0 {
		t.Errorf("boot: loaded a Xen-only module off Xen: %q", calls)
	}
	late := "load /lib/modules/" + kernelRelease() + "/kernel/d.ko"
	if slices.Contains(calls, late) {
		t.Errorf("boot: loaded a late module before the API: %q", calls)
	}
	r.write("lib/modules/x.ko", "module")
	volatile := isVolatile(filepath.Join(r.dir, "lib/modules"))
	n.lateBoot()
	if !slices.Contains(k.log(), late) {
		t.Errorf("lateBoot: did not load the late module: %q", k.log())
	}
	// In RAM the module files are freed; on a disk they stay.
	_, err := os.Stat(filepath.Join(r.dir, "lib/modules/x.ko"))
	if gone := os.IsNotExist(err); gone != volatile {
		t.Errorf("lateBoot: module files gone = %v, want %v (root in RAM: %v)", gone, volatile, volatile)
	}
	select {
	case cfg := <-nets:
		if cfg.Mode != netup.ModeStatic || cfg.Address.String() != "10.0.2.15/24" || cfg.Device != "eth0" {
			t.Errorf("boot: network config = %+v, want static 10.0.2.15/24 on eth0", cfg)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("boot: network was never brought up")
	}
	if !n.data.Persistent || n.bootCount != 1 || n.db == nil {
		t.Errorf("boot: persistent=%v bootCount=%d db=%v, want true, 1, open", n.data.Persistent, n.bootCount, n.db != nil)
	}
	if n.environment() != api.EnvVM {
		t.Errorf("boot: environment = %s, want vm", n.environment())
	}
	if _, ok := n.Authorize(mustFirstKey(t, r.keys)); !ok {
		t.Errorf("boot: the baked client key is not authorized; logs:\n%s", logs)
	}
}

func TestBootMountAlreadyThere(t *testing.T) {
	r := newTestRoot(t, "")
	k := &fakeKernel{root: r.dir, mountErr: map[string]error{"/dev": unix.EBUSY, "/sys/fs/cgroup": unix.ENODEV}}
	var logs bytes.Buffer
	n := newNode(testLogger(&logs), k, r.dir)
	mounted := mountTable(k, n.log, r.dir, rootfs.Mounts)
	if slices.Contains(mounted, filepath.Join(r.dir, "/dev")) || len(mounted) != len(rootfs.Mounts)-2 {
		t.Errorf("mountTable with /dev busy, cgroup2 missing = %q", mounted)
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("mountTable: EBUSY and a missing optional filesystem should not warn:\n%s", logs.String())
	}
}

func TestBootContainer(t *testing.T) {
	r := newTestRoot(t, "allium.data=LABEL=host-thing ip=dhcp")
	n, k, nets, _ := bootNode(t, r, []string{"-z"})
	for _, c := range k.log() {
		if strings.HasPrefix(c, "load ") || strings.HasPrefix(c, "reboot") || strings.HasPrefix(c, "mount ext4") {
			t.Errorf("boot in an OS container: %q should not happen", c)
		}
	}
	select {
	case <-nets:
		t.Errorf("boot in an OS container configured the network")
	case <-time.After(100 * time.Millisecond):
	}
	if n.environment() != api.EnvContainer || n.data.Mounted != "" || n.bootCount != 1 {
		t.Errorf("boot in an OS container: env=%s data=%+v boot=%d", n.environment(), n.data, n.bootCount)
	}
}

func TestBootNoCapSysModuleIsContainer(t *testing.T) {
	r := newTestRoot(t, "")
	r.write("proc/self/status", "CapEff:\t00000000a80425fb\n")
	n, _, _, _ := bootNode(t, r, nil)
	if !n.container {
		t.Errorf("boot without CAP_SYS_MODULE: not treated as a container")
	}
}

func TestBootNoDataFallsBackToTmpfs(t *testing.T) {
	deviceWait = 200 * time.Millisecond
	for _, cmdline := range []string{"console=ttyS0", "allium.data=LABEL=missing"} {
		r := newTestRoot(t, cmdline)
		n, k, _, logs := bootNode(t, r, nil)
		if n.data.Persistent || !slices.Contains(k.log(), "mount tmpfs tmpfs "+rootfs.DataDir) {
			t.Errorf("boot(%q): data = %+v, calls %q, want a tmpfs", cmdline, n.data, k.log())
		}
		if !strings.Contains(logs.String(), "persistence is OFF") || len(n.currentWarnings()) == 0 {
			t.Errorf("boot(%q) did not say loudly that nothing persists:\n%s", cmdline, logs)
		}
	}
}

func TestShutdownOrder(t *testing.T) {
	r := newTestRoot(t, "allium.data=LABEL=allium-data")
	r.disk("vda", "allium-data")
	n, k, _, _ := bootNode(t, r, nil)
	k.running = 3
	var rebootErr error = unix.EINVAL
	n.afterReboot = func(err error) { rebootErr = err }
	n.shutdown(powerReboot)
	calls := k.log()
	order := []string{
		"kill -1 SIGTERM",
		"sync",
		"unmount " + rootfs.DataDir,
		"unmount /sys/fs/cgroup",
		"unmount /proc",
		"reboot 0x1234567",
	}
	last := -1
	for _, want := range order {
		i := slices.Index(calls[last+1:], want)
		if i < 0 {
			t.Fatalf("shutdown: %q missing or out of order in %q", want, calls)
		}
		last += 1 + i
	}
	if rebootErr != nil {
		t.Errorf("shutdown: reboot(2) = %v", rebootErr)
	}
	if _, err := n.db.Keys(); err == nil {
		t.Errorf("shutdown: state.db still open")
	}
	n.db = nil
}

func TestShutdownKillsStragglers(t *testing.T) {
	r := newTestRoot(t, "")
	n, k, _, _ := bootNode(t, r, []string{"-z"})
	k.running = 1 << 30 // never goes away
	old := [2]time.Duration{termGrace, killGrace}
	termGrace, killGrace = 100*time.Millisecond, 100*time.Millisecond
	defer func() { termGrace, killGrace = old[0], old[1] }()
	n.afterReboot = func(error) {}
	n.shutdown(powerOff)
	calls := k.log()
	if i, j := indexOf(calls, "kill -1 SIGTERM"), indexOf(calls, "kill -1 SIGKILL"); i < 0 || j < i {
		t.Errorf("shutdown with stragglers = %q, want SIGTERM then SIGKILL", calls)
	}
	n.db = nil
}

func TestPowerButton(t *testing.T) {
	ev := func(typ, code uint16, value int32) []byte {
		b := make([]byte, eventSize)
		binary.NativeEndian.PutUint16(b[16:], typ)
		binary.NativeEndian.PutUint16(b[18:], code)
		binary.NativeEndian.PutUint32(b[20:], uint32(value))
		return b
	}
	press := slices.Concat(ev(evKey, 30, 1), ev(0, 0, 0), ev(evKey, keyPower, 1))
	if !isPowerPress(bytes.NewReader(press)) {
		t.Errorf("isPowerPress(a KEY_POWER press) = false")
	}
	release := slices.Concat(ev(evKey, keyPower, 0), ev(evKey, 30, 1))
	if isPowerPress(bytes.NewReader(release)) {
		t.Errorf("isPowerPress(a release and another key) = true")
	}
}

func mustFirstKey(t *testing.T, authorized string) ed25519.PublicKey {
	keys, err := api.ParseAuthorizedKeys(strings.NewReader(authorized))
	if err != nil || len(keys) == 0 {
		t.Fatalf("ParseAuthorizedKeys: %v", err)
	}
	return keys[0].Key
}

func TestBootSetsAClockEarlierThanTheBuild(t *testing.T) {
	for _, tc := range []struct {
		name, built string
		args        []string
		want        bool
	}{
		{"clock before the build", "2999-01-02T03:04:05Z", nil, true},
		{"clock after the build", "2001-01-01T00:00:00Z", nil, false},
		{"no build time", "", nil, false},
		{"OS container: not ours to set", "2999-01-02T03:04:05Z", []string{"-z"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRoot(t, "console=ttyS0\n")
			cfg := `{"name":"web1"}`
			if tc.built != "" {
				cfg = `{"name":"web1","built":"` + tc.built + `"}`
			}
			r.write(rootfs.NodeConfigFile, cfg)
			n, k, _, logs := bootNode(t, r, tc.args)
			set := slices.Contains(k.log(), "setclock "+tc.built)
			if set != tc.want {
				t.Errorf("boot: set the clock to %q = %v, want %v; calls %q\nlogs:\n%s", tc.built, set, tc.want, k.log(), logs)
			}
			warned := slices.ContainsFunc(n.currentWarnings(), func(w string) bool { return strings.Contains(w, "tor needs a correct clock") })
			if warned != tc.want {
				t.Errorf("boot: warnings %q; want a clock warning: %v", n.currentWarnings(), tc.want)
			}
		})
	}
}

// OpenVZ's /proc makes a container even when vzctl left no other sign
// (a CAP_SYS_MODULE-less init aside); the host's, with /proc/vz/version,
// does not. The beancounters' limit is the node's memory.
func TestBootOpenVZProc(t *testing.T) {
	r := newTestRoot(t, "")
	r.write("proc/vz/veinfo", "")
	r.write(beancountersFile, vswapBeancounters)
	r.write("proc/meminfo", "MemTotal:       16000000 kB\nMemAvailable:   12000000 kB\n")
	n, _, nets, _ := bootNode(t, r, nil)
	if !n.container {
		t.Fatalf("boot with /proc/vz and no /proc/vz/version: not an OS container")
	}
	select {
	case <-nets:
		t.Errorf("boot in an OpenVZ container configured the network")
	case <-time.After(100 * time.Millisecond):
	}
	page := uint64(os.Getpagesize())
	if m := n.memory(); m.Total != 262144*page || m.Available != (262144-40960)*page {
		t.Errorf("memory() under beancounters = %+v, want total %d, available %d", m, 262144*page, (262144-40960)*page)
	}

	host := newTestRoot(t, "")
	host.write("proc/vz/version", "")
	host.write(beancountersFile, hostBeancounters)
	if n, _, _, _ := bootNode(t, host, nil); n.container {
		t.Errorf("boot with /proc/vz/version (an OpenVZ host): taken for a container")
	}
}

// allium.data=DEVICE:/DIR (what the kexec takeover passes: the node's
// data in a directory of the old system's root filesystem): the
// partition is mounted on a staging directory, the directory is bound
// on the data root and the staging mount detached, so that the data
// root's unmount at shutdown leaves the filesystem clean. A directory
// that is not clean and absolute is refused, loudly.
func TestBootDataOnPartition(t *testing.T) {
	r := newTestRoot(t, "allium.data=LABEL=debian-root:/var/lib/allium")
	r.disk("vda", "debian-root")
	n, k, _, _ := bootNode(t, r, nil)
	calls := k.log()
	stage := "/run/allium-data-partition"
	order := []string{
		"mount ext4 /dev/vda " + stage,
		"mount  " + stage + "/var/lib/allium " + rootfs.DataDir,
		"unmount " + stage,
	}
	last := -1
	for _, want := range order {
		i := slices.Index(calls[last+1:], want)
		if i < 0 {
			t.Fatalf("boot: %q missing or out of order in %q", want, calls)
		}
		last += 1 + i
	}
	if !n.data.Persistent || n.data.Mounted == "" || !strings.Contains(n.data.Desc, "/var/lib/allium on /dev/vda") {
		t.Errorf("data root = %+v, want persistent, mounted, described as /var/lib/allium on /dev/vda", n.data)
	}

	for _, spec := range []string{"LABEL=debian-root:/var/../etc", "LABEL=debian-root:/"} {
		r := newTestRoot(t, "allium.data="+spec)
		r.disk("vda", "debian-root")
		n, _, _, logs := bootNode(t, r, nil)
		if n.data.Persistent || !strings.Contains(logs.String(), "want a clean absolute directory") {
			t.Errorf("allium.data=%s: data root %+v, want a tmpfs and the reason said:\n%s", spec, n.data, logs)
		}
	}
}
