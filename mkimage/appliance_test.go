package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"allium/api"
	"allium/hiddenservice"
	"allium/rootfs"
)

const fakeRelease = "6.1.0-99-test"

// A modules.dep with some of rootfs.Modules, one of them compressed, and
// none of evdev (built in) or bridge (missing, which is only a warning).
const fakeDep = `kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/xen-blkfront.ko:
`

type fixture struct {
	dir, kernel, modules, init, kexec, config, out string
}

// newFixture lays out a fake kernel, module directory and init binary.
func newFixture(t *testing.T) fixture {
	t.Helper()
	d := t.TempDir()
	fx := fixture{dir: d, kernel: filepath.Join(d, "vmlinuz-x"), modules: filepath.Join(d, "modules"),
		init: filepath.Join(d, "init"), kexec: filepath.Join(d, "kexec"), config: filepath.Join(d, "config"), out: filepath.Join(d, "out")}
	files := map[string]string{
		fx.kernel:                                string(fakeBzImage(fakeRelease + " (test) #1")),
		fx.init:                                  "#!fake init\n",
		fx.kexec:                                 "#!fake kexec\n",
		filepath.Join(fx.modules, "modules.dep"): fakeDep,
		filepath.Join(fx.modules, "modules.builtin"): "kernel/drivers/input/evdev.ko\n",
	}
	for _, line := range strings.Split(strings.TrimSpace(fakeDep), "\n") {
		ko, _, _ := strings.Cut(line, ":")
		files[filepath.Join(fx.modules, ko)] = "module " + ko
	}
	for p, data := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return fx
}

// args are the flags every appliance run of the fixture needs.
func (fx fixture) args(extra ...string) []string {
	return append([]string{"appliance", "--name", "t1", "-o", fx.out, "--kernel", fx.kernel,
		"--modules", fx.modules, "--init", fx.init, "--kexec", fx.kexec, "--config", fx.config}, extra...)
}

func runMkimage(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &o, &e)
	return code, o.String(), e.String()
}

// dataArgs is how the test asks for a data disk: a small one, or none
// where mkfs.ext4 is missing.
func dataArgs(t *testing.T) (args []string, ok bool) {
	if _, err := lookTool("mkfs.ext4", "e2fsprogs"); err != nil {
		t.Logf("no data disk checks: %v", err)
		return []string{"--no-data"}, false
	}
	return []string{"--data-size", "16M"}, true
}

// initrdFiles unpacks DIR/initrd.img.
func initrdFiles(t *testing.T, dir string) map[string]cpioFile {
	t.Helper()
	z, err := os.ReadFile(filepath.Join(dir, initrdFile))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatalf("initrd.img is not gzip: %v", err)
	}
	var raw bytes.Buffer
	if _, err := raw.ReadFrom(zr); err != nil {
		t.Fatal(err)
	}
	files := map[string]cpioFile{}
	for _, f := range readCpio(t, raw.Bytes()) {
		files["/"+f.name] = f
	}
	return files
}

// torArgs are the flags of a run that bundles the build host's tor, or
// --no-tor where it has none.
func torArgs(t *testing.T) (args []string, ok bool) {
	if _, err := os.Stat(rootfs.TorExe); err != nil {
		t.Logf("no tor checks: this machine has no %s (tools/deps.sh installs it)", rootfs.TorExe)
		return []string{"--no-tor"}, false
	}
	return nil, true
}

func TestApplianceEndToEnd(t *testing.T) {
	fx := newFixture(t)
	data, withData := dataArgs(t)
	torFlags, withTor := torArgs(t)
	start := time.Now().Truncate(time.Second)
	code, stdout, stderr := runMkimage(t, fx.args(append(data, torFlags...)...)...)
	if code != 0 {
		t.Fatalf("mkimage appliance = exit %d, want 0\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "bridge") {
		t.Errorf("stderr = %q, want a warning naming the missing module bridge", stderr)
	}
	files := initrdFiles(t, fx.out)
	checkInitrdLayout(t, files)
	checkInitrdConfig(t, fx, files, withData, withTor, start)
	checkInitrdModules(t, fx, files)
	checkAlias(t, fx, "127.0.0.1:7707")
	for _, name := range []string{kernelFile, nodeKeyFile, cmdlineFile, nodeJSONFile} {
		if _, err := os.Stat(filepath.Join(fx.out, name)); err != nil {
			t.Errorf("appliance did not write %s: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(fx.out, dataFile)); (err == nil) != withData {
		t.Errorf("data.img: stat = %v, want it to exist: %v", err, withData)
	}
	wantLine := cmdline(!withData, "")
	if b, _ := os.ReadFile(filepath.Join(fx.out, cmdlineFile)); strings.TrimSpace(string(b)) != wantLine {
		t.Errorf("cmdline = %q, want %q", b, wantLine)
	}
}

func checkInitrdLayout(t *testing.T, files map[string]cpioFile) {
	t.Helper()
	if f := files["/init"]; f.mode != 0o100755 || string(f.data) != "#!fake init\n" {
		t.Errorf("/init = mode %o %q, want 100755 and the --init file", f.mode, f.data)
	}
	if f := files["/dev/console"]; f.mode != 0o020600 || f.rmajor != 5 || f.rminor != 1 {
		t.Errorf("/dev/console = mode %o rdev %d,%d, want 20600 5,1", f.mode, f.rmajor, f.rminor)
	}
	for _, d := range rootfs.Dirs {
		if f, ok := files[d.Path]; !ok || f.mode&modeFmt != modeDir || f.mode&0o7777 != uint64(permBits(d.Mode)) {
			t.Errorf("%s = %v mode %o, want a directory with mode %o", d.Path, ok, f.mode, d.Mode)
		}
	}
	for name, target := range rootfs.Symlinks {
		if f := files[name]; f.mode != 0o120777 || string(f.data) != target {
			t.Errorf("%s = mode %o -> %q, want a symlink to %q", name, f.mode, f.data, target)
		}
	}
}

func checkInitrdConfig(t *testing.T, fx fixture, files map[string]cpioFile, withData, withTor bool, start time.Time) {
	t.Helper()
	c, err := rootfs.ParseNodeConfig(files[rootfs.NodeConfigFile].data)
	want := rootfs.NodeConfig{Name: "t1", Tor: rootfs.TorConfig{Off: !withTor}}
	if withData {
		want.Data = "LABEL=" + rootfs.DataLabel
	}
	if c.Built.Before(start) || c.Built.After(time.Now()) {
		t.Errorf("node.json built = %v, want the time of the build (after %v)", c.Built, start)
	}
	want.Built = c.Built
	if err != nil || !reflect.DeepEqual(c, want) {
		t.Errorf("ParseNodeConfig(node.json) = %+v, %v, want %+v", c, err, want)
	}
	nodeKey, err := api.ParsePrivateKey(files[rootfs.NodeKeyFile].data)
	diskKey, _ := api.ReadPrivateKey(filepath.Join(fx.out, nodeKeyFile))
	if err != nil || !nodeKey.Equal(diskKey) || files[rootfs.NodeKeyFile].mode != 0o100600 {
		t.Errorf("baked node.key = mode %o, %v; want DIR/node.key, mode 100600", files[rootfs.NodeKeyFile].mode, err)
	}
	keys, err := api.ParseAuthorizedKeys(bytes.NewReader(files[rootfs.AuthorizedKeysFile].data))
	client, cerr := api.Config{Dir: fx.config}.ClientKey()
	if err != nil || cerr != nil || len(keys) != 1 || keys[0].Name != "admin" ||
		!keys[0].Key.Equal(client.Public().(ed25519.PublicKey)) {
		t.Errorf("authorized_keys = %+v, %v (client key: %v), want the client key named admin", keys, err, cerr)
	}
}

func checkInitrdModules(t *testing.T, fx fixture, files map[string]cpioFile) {
	t.Helper()
	release, order, err := rootfs.ParseModuleOrder(bytes.NewReader(files[rootfs.ModulesOrderFile].data))
	want, _, _ := resolveModules(fx.modules)
	if err != nil || release != fakeRelease || !slices.Equal(order, want) || len(order) != 5 {
		t.Fatalf("modules.order = %q, %v, %v, want %q, %v", release, order, err, fakeRelease, want)
	}
	for _, m := range order {
		f, ok := files["/lib/modules/"+fakeRelease+"/"+m.Path]
		if !ok || string(f.data) != "module "+m.Path {
			t.Errorf("initrd module %s = %v %q, want the file copied as is", m.Path, ok, f.data)
		}
	}
}

// checkAlias checks the alias t1 against the keys in the appliance
// directory: the node's TLS key and, when it has one, its onion key.
func checkAlias(t *testing.T, fx fixture, address string) {
	t.Helper()
	a, err := api.Config{Dir: fx.config}.Alias("t1")
	node, kerr := api.ReadPrivateKey(filepath.Join(fx.out, nodeKeyFile))
	if err != nil || kerr != nil {
		t.Fatalf("Alias(t1) = %v; node key: %v", err, kerr)
	}
	want := api.Alias{Name: "t1", Address: address, NodeKey: api.FormatKey(node.Public().(ed25519.PublicKey)),
		Bundle: filepath.Join(fx.out, installFile)}
	if pem, err := os.ReadFile(filepath.Join(fx.out, onionKeyFile)); err == nil {
		onion, err := hiddenservice.ParseKey(pem)
		if err != nil {
			t.Fatalf("DIR/onion.key: %v", err)
		}
		want.Onion = hiddenservice.KeyAddress(onion) + ":7707"
	}
	if a != want {
		t.Errorf("Alias(t1) = %+v, want %+v", a, want)
	}
}

func TestApplianceRebuildKeepsIdentity(t *testing.T) {
	fx := newFixture(t)
	data, withData := dataArgs(t)
	torFlags, _ := torArgs(t)
	data = append(data, torFlags...)
	if code, _, stderr := runMkimage(t, fx.args(data...)...); code != 0 {
		t.Fatalf("first run: exit %d: %s", code, stderr)
	}
	key1, _ := os.ReadFile(filepath.Join(fx.out, nodeKeyFile))
	onion1 := api.Config{Dir: fx.config}.OnionKeyPath()
	keep := []string{filepath.Join(fx.out, onionKeyFile), onion1}
	kept := map[string][]byte{}
	for _, p := range keep {
		kept[p], _ = os.ReadFile(p)
	}
	disk1, _ := os.Stat(filepath.Join(fx.out, dataFile))
	code, stdout, stderr := runMkimage(t, fx.args(data...)...)
	if code != 0 {
		t.Fatalf("second run: exit %d: %s", code, stderr)
	}
	key2, _ := os.ReadFile(filepath.Join(fx.out, nodeKeyFile))
	if len(key1) == 0 || !bytes.Equal(key1, key2) {
		t.Errorf("second run: node.key changed; want it kept")
	}
	for _, p := range keep {
		if b, _ := os.ReadFile(p); !bytes.Equal(b, kept[p]) {
			t.Errorf("second run: %s changed; want it kept, so the .onion address and client stay", p)
		}
	}
	checkAlias(t, fx, "127.0.0.1:7707")
	if !withData {
		return
	}
	disk2, err := os.Stat(filepath.Join(fx.out, dataFile))
	if err != nil || !os.SameFile(disk1, disk2) || !strings.Contains(stdout, "kept") {
		t.Errorf("second run: data.img same file = %v (%v), summary %q; want it kept and said so", err == nil && os.SameFile(disk1, disk2), err, stdout)
	}
	if code, _, stderr := runMkimage(t, fx.args(append(data, "--force-data")...)...); code != 0 {
		t.Fatalf("--force-data: exit %d: %s", code, stderr)
	}
	if disk3, _ := os.Stat(filepath.Join(fx.out, dataFile)); os.SameFile(disk1, disk3) {
		t.Errorf("--force-data: data.img is the same file; want a new one")
	}
}

func TestApplianceNoDataNoTCP(t *testing.T) {
	fx := newFixture(t)
	if _, ok := torArgs(t); !ok {
		t.Skip("--no-tcp needs tor, for the onion: install tor (apt-get install tor)")
	}
	if code, _, stderr := runMkimage(t, fx.args("--no-data", "--no-tcp", "--append", "quiet")...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	files := initrdFiles(t, fx.out)
	c, err := rootfs.ParseNodeConfig(files[rootfs.NodeConfigFile].data)
	if err != nil || c.Port != -1 || c.ListenPort() != 0 || c.Data != "" || c.Tor.Off {
		t.Errorf("node.json = %+v, %v, want port -1, no data and tor on", c, err)
	}
	checkAlias(t, fx, "")
	b, _ := os.ReadFile(filepath.Join(fx.out, cmdlineFile))
	if got := strings.TrimSpace(string(b)); got != "console=ttyS0 panic=-1 loglevel=4 quiet" {
		t.Errorf("cmdline = %q, want no allium.data= and the --append text", got)
	}
	if _, err := os.Stat(filepath.Join(fx.out, dataFile)); err == nil {
		t.Errorf("--no-data: data.img exists")
	}
}

func TestApplianceErrors(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		args     []string
		code     int
		mentions string
	}{
		{[]string{"appliance", "-o", fx.out}, 2, "--name"},
		{fx.args("--data-size", "12X"), 2, "--data-size"},
		{fx.args("--data-size", "1M"), 2, "--data-size"},
		{fx.args("--compress", "lz4"), 2, "--compress"},
		{fx.args("--no-tcp", "--port", "80"), 2, "--port"},
		{fx.args("--no-tcp", "--address", "10.0.0.1:7707"), 2, "--address"},
		{fx.args("--no-tor", "--no-tcp"), 2, "--no-tcp"},
		{fx.args("--no-tor", "--tor", "/usr/sbin/tor"), 2, "--tor"},
		{fx.args("--no-tor", "--torrc", "/etc/hostname"), 2, "--torrc"},
		{fx.args("--tor", "/nonexistent"), 1, "install tor (apt-get install tor) or pass --tor PATH or --no-tor"},
		{fx.args("--tor", fx.init), 1, "not an ELF executable"},
		{fx.args("--torrc", filepath.Join(fx.dir, "nosuch")), 1, "--torrc"},
		{[]string{"appliance", "--name", "t1"}, 2, "--output"},
		{[]string{"appliance", "--name", "bad name", "-o", fx.out}, 2, "--name"},
		{fx.args("--init", filepath.Join(fx.dir, "nosuch")), 1, "no init binary"},
		{fx.args("--kernel", fx.init), 1, "bzImage"},
		{fx.args("--modules", filepath.Join(fx.dir, "nosuch")), 1, "--modules"},
		{[]string{"nosuch"}, 2, "unknown command"},
	}
	for _, tt := range tests {
		code, _, stderr := runMkimage(t, tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.mentions) {
			t.Errorf("mkimage %s = exit %d, stderr %q; want exit %d mentioning %q",
				strings.Join(tt.args, " "), code, stderr, tt.code, tt.mentions)
		}
	}
}
