package main

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"allium/api"
	"allium/hiddenservice"
	"allium/rootfs"
)

// needTor skips a test that bundles the build host's tor when there is
// none.
func needTor(t *testing.T) {
	t.Helper()
	if _, ok := torArgs(t); !ok {
		t.Skipf("this machine has no %s: install tor (apt-get install tor; tools/deps.sh does) to run the tor bundling tests", rootfs.TorExe)
	}
}

// cpioResolve follows p through the archive's own directories and
// symlinks, as the node's kernel will, and returns the real path and
// the entry there.
func cpioResolve(files map[string]cpioFile, p string) (string, cpioFile, error) {
	cur, rest := "/", strings.Split(p, "/")
	for links := 0; len(rest) > 0; {
		part := rest[0]
		if rest = rest[1:]; part == "" || part == "." {
			continue
		}
		if part == ".." {
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, part)
		f, ok := files[next]
		if !ok {
			return "", cpioFile{}, fmt.Errorf("%s: no %s in the initramfs", p, next)
		}
		if f.mode&modeFmt != modeLink {
			cur = next
			continue
		}
		if links++; links > maxSymlinks {
			return "", cpioFile{}, fmt.Errorf("%s: too many symlinks", p)
		}
		target := string(f.data)
		if path.IsAbs(target) {
			cur = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return cur, files[cur], nil
}

// cpioELF opens the regular file p of the archive as ELF.
func cpioELF(t *testing.T, files map[string]cpioFile, p string) *elf.File {
	t.Helper()
	real, f, err := cpioResolve(files, p)
	if err != nil {
		t.Fatal(err)
	}
	if f.mode&modeFmt != modeReg {
		t.Fatalf("%s -> %s: mode %o, want a regular file", p, real, f.mode)
	}
	e, err := elf.NewFile(bytes.NewReader(f.data))
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return e
}

// checkLoadable checks that the loader the tor in the initramfs names,
// and every library its DT_NEEDED entries name, recursively, are in the
// initramfs where a loader without ld.so.cache looks (libDirs), reading
// only the archive. It returns the libraries' names.
func checkLoadable(t *testing.T, files map[string]cpioFile, exe string) []string {
	t.Helper()
	prog := cpioELF(t, files, exe)
	interp, err := interpreter(prog)
	if err != nil || interp == "" {
		t.Fatalf("%s: PT_INTERP = %q, %v; want the host tor's loader", exe, interp, err)
	}
	if _, f, err := cpioResolve(files, interp); err != nil || f.mode&modeFmt != modeReg {
		t.Errorf("loader %s: %v, mode %o; want a regular file in the initramfs", interp, err, f.mode)
	}
	var found []string
	for queue := []*elf.File{prog}; len(queue) > 0; queue = queue[1:] {
		needed, err := queue[0].DynString(elf.DT_NEEDED)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range needed {
			if slices.Contains(found, name) {
				continue
			}
			found = append(found, name)
			i := slices.IndexFunc(libDirs, func(d string) bool {
				_, f, err := cpioResolve(files, path.Join(d, name))
				return err == nil && f.mode&modeFmt == modeReg
			})
			if i < 0 {
				t.Errorf("library %s: in none of %s in the initramfs", name, strings.Join(libDirs, ", "))
				continue
			}
			queue = append(queue, cpioELF(t, files, path.Join(libDirs[i], name)))
		}
	}
	return found
}

func TestApplianceBundlesTor(t *testing.T) {
	needTor(t)
	fx := newFixture(t)
	code, stdout, stderr := runMkimage(t, fx.args("--no-data")...)
	if code != 0 {
		t.Fatalf("mkimage appliance = exit %d, want 0\nstderr: %s", code, stderr)
	}
	files := initrdFiles(t, fx.out)
	hostTor, err := os.ReadFile(rootfs.TorExe)
	if err != nil {
		t.Fatal(err)
	}
	if _, f, err := cpioResolve(files, rootfs.TorExe); err != nil || !bytes.Equal(f.data, hostTor) {
		t.Fatalf("%s in the initramfs: %v, %d bytes; want the host's tor (%d bytes)", rootfs.TorExe, err, len(f.data), len(hostTor))
	}
	libs := checkLoadable(t, files, rootfs.TorExe)
	if !slices.Contains(libs, "libc.so.6") || !slices.Contains(libs, "libcrypto.so.3") {
		t.Errorf("tor's libraries = %q; want at least libc.so.6 and libcrypto.so.3 (is the host tor Debian's?)", libs)
	}
	for _, name := range rootfs.TorDlopened {
		if _, err := os.Stat(path.Join(libDirs[0], name)); err != nil {
			continue
		}
		if _, f, err := cpioResolve(files, path.Join(libDirs[0], name)); err != nil || f.mode&modeFmt != modeReg {
			t.Errorf("%s (dlopened by glibc): %v; want it in the initramfs", name, err)
		}
	}
	for name := range files {
		if strings.HasPrefix(name, "/usr/share") || strings.HasPrefix(name, "/etc/tor") {
			t.Errorf("initramfs has %s; want nothing of tor's but the binary and its libraries", name)
		}
	}
	if !strings.Contains(stdout, "tor:        "+rootfs.TorExe) || !strings.Contains(stdout, "gzip of initrd.img") {
		t.Errorf("summary = %q, want a tor line with what tor adds to the initramfs", stdout)
	}
	checkAccounts(t, files)
	checkOnion(t, fx, files, stdout)
}

func checkAccounts(t *testing.T, files map[string]cpioFile) {
	t.Helper()
	passwd := string(files[rootfs.PasswdFile].data)
	wantTor := fmt.Sprintf("%s:x:%d:%d::%s:/bin/false\n", rootfs.TorUser, rootfs.TorUID, rootfs.TorUID, rootfs.TorDataDir)
	if !strings.HasPrefix(passwd, "root:x:0:0:") || !strings.Contains(passwd, wantTor) || files[rootfs.PasswdFile].mode != 0o100644 {
		t.Errorf("/etc/passwd = mode %o %q, want 100644 with root and %q", files[rootfs.PasswdFile].mode, passwd, wantTor)
	}
	group := string(files[rootfs.GroupFile].data)
	if want := fmt.Sprintf("%s:x:%d:\n", rootfs.TorUser, rootfs.TorUID); !strings.HasPrefix(group, "root:x:0:") || !strings.Contains(group, want) {
		t.Errorf("/etc/group = %q, want root and %q", group, want)
	}
}

// checkOnion checks the baked onion key against the alias and the
// summary, and the baked admin key against the client's x25519 key.
func checkOnion(t *testing.T, fx fixture, files map[string]cpioFile, stdout string) {
	t.Helper()
	baked := files[rootfs.OnionKeyFile]
	key, err := hiddenservice.ParseKey(baked.data)
	if err != nil || baked.mode != 0o100600 {
		t.Fatalf("%s = mode %o, %v; want an onion key, mode 100600", rootfs.OnionKeyFile, baked.mode, err)
	}
	kept, _ := os.ReadFile(filepath.Join(fx.out, onionKeyFile))
	if !bytes.Equal(kept, baked.data) {
		t.Errorf("DIR/onion.key differs from the baked one; want a copy")
	}
	cfg := api.Config{Dir: fx.config}
	alias, err := cfg.Alias("t1")
	if want := hiddenservice.KeyAddress(key) + ":7707"; err != nil || alias.Onion != want {
		t.Errorf("alias onion = %q, %v; want %q", alias.Onion, err, want)
	}
	if !strings.Contains(stdout, hiddenservice.KeyAddress(key)) {
		t.Errorf("summary = %q, want the .onion address in it", stdout)
	}
	client, err := hiddenservice.ReadClientKeyFile(cfg.OnionKeyPath())
	if err != nil {
		t.Fatalf("client.onion: %v", err)
	}
	if fi, err := os.Stat(cfg.OnionKeyPath()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("client.onion: %v, want mode 0600", err)
	}
	keys, err := api.ParseAuthorizedKeys(bytes.NewReader(files[rootfs.AuthorizedKeysFile].data))
	if err != nil || len(keys) != 1 || !bytes.Equal(keys[0].Onion, client.PublicKey().Bytes()) {
		t.Errorf("authorized_keys = %+v, %v; want the admin line with client.onion's public key %s",
			keys, err, hiddenservice.FormatClientPublicKey(client.PublicKey()))
	}
}

func TestApplianceNoTor(t *testing.T) {
	fx := newFixture(t)
	code, stdout, stderr := runMkimage(t, fx.args("--no-data", "--no-tor")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	files := initrdFiles(t, fx.out)
	c, err := rootfs.ParseNodeConfig(files[rootfs.NodeConfigFile].data)
	if err != nil || !c.Tor.Off || c.ListenPort() != rootfs.DefaultPort {
		t.Errorf("node.json = %+v, %v; want tor off and TCP on", c, err)
	}
	for name := range files {
		if strings.Contains(name, "tor") || strings.HasPrefix(name, "/usr") || strings.Contains(name, ".so") {
			t.Errorf("--no-tor: initramfs has %s", name)
		}
	}
	if !strings.Contains(string(files[rootfs.PasswdFile].data), "root:") {
		t.Errorf("--no-tor: /etc/passwd = %q, want it still written", files[rootfs.PasswdFile].data)
	}
	keys, err := api.ParseAuthorizedKeys(bytes.NewReader(files[rootfs.AuthorizedKeysFile].data))
	if err != nil || len(keys) != 1 || keys[0].Onion != nil {
		t.Errorf("--no-tor: authorized_keys = %+v, %v; want the admin key without an x25519 key", keys, err)
	}
	if _, err := os.Stat(api.Config{Dir: fx.config}.OnionKeyPath()); err == nil {
		t.Errorf("--no-tor: made client.onion; want no onion keys")
	}
	checkAlias(t, fx, "127.0.0.1:7707") // no onion.key in DIR: no Onion
	if !strings.Contains(stdout, "--no-tor") {
		t.Errorf("summary = %q, want it to say there is no tor", stdout)
	}
}

func TestApplianceTorrc(t *testing.T) {
	needTor(t)
	fx := newFixture(t)
	torrc := filepath.Join(fx.dir, "bridges.conf")
	if err := os.WriteFile(torrc, []byte("# bridges\r\nUseBridges 1\n\n  Bridge 192.0.2.1:443  \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runMkimage(t, fx.args("--no-data", "--torrc", torrc)...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	c, err := rootfs.ParseNodeConfig(initrdFiles(t, fx.out)[rootfs.NodeConfigFile].data)
	if want := []string{"UseBridges 1", "Bridge 192.0.2.1:443"}; err != nil || !reflect.DeepEqual(c.Tor.Torrc, want) {
		t.Errorf("node.json tor.torrc = %q, %v; want %q", c.Tor.Torrc, err, want)
	}
	if err := os.WriteFile(torrc, []byte("# nothing\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runMkimage(t, fx.args("--no-data", "--torrc", torrc)...); code != 1 || !strings.Contains(stderr, "no torrc lines") {
		t.Errorf("--torrc of comments only = exit %d, %q; want exit 1 saying it has no lines", code, stderr)
	}
}

// A --tor binary that is not at /usr/sbin/tor keeps its own path, and
// /usr/sbin/tor points at it.
func TestApplianceStaticTor(t *testing.T) {
	const static = "/bin/busybox"
	if _, err := os.Stat(static); err != nil || elfInterpreter(static) != "" {
		t.Skipf("no static %s to stand in for a static tor (apt-get install busybox-static)", static)
	}
	real, err := filepath.EvalSymlinks(static)
	if err != nil {
		t.Fatal(err)
	}
	fx := newFixture(t)
	code, stdout, stderr := runMkimage(t, fx.args("--no-data", "--tor", static)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	files := initrdFiles(t, fx.out)
	body, _ := os.ReadFile(real)
	got, f, err := cpioResolve(files, rootfs.TorExe)
	if err != nil || got != real || !bytes.Equal(f.data, body) {
		t.Errorf("%s -> %s, %v; want it to lead to %s", rootfs.TorExe, got, err, real)
	}
	for name := range files {
		if strings.Contains(name, ".so") {
			t.Errorf("static --tor: initramfs has %s; want no libraries", name)
		}
	}
	if !strings.Contains(stdout, static+" and 0 libraries") {
		t.Errorf("summary = %q, want it to name %s and no libraries", stdout, static)
	}
}

// The initramfs has a real /lib (for /lib/modules) where a merged-/usr
// host has /lib -> usr/lib: the child on the way becomes a link.
func TestBypassLayoutDirs(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"usr/lib/x86_64-linux-gnu", "usr/sbin", "opt"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"lib": "usr/lib", "sbin": "/usr/sbin"} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		in, want string
		links    map[string]string
	}{
		{"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", map[string]string{"/lib/x86_64-linux-gnu": "/usr/lib/x86_64-linux-gnu"}},
		{"/sbin/tor", "/usr/sbin/tor", map[string]string{"/sbin/tor": "/usr/sbin/tor"}},
		{"/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", map[string]string{}},
		{"/opt/tor", "/opt/tor", map[string]string{}},
	}
	for _, tt := range tests {
		links := map[string]string{}
		got, err := bypassLayoutDirs(root, tt.in, links)
		if err != nil || got != tt.want || !reflect.DeepEqual(links, tt.links) {
			t.Errorf("bypassLayoutDirs(%q) = %q, %v, links %v; want %q, links %v", tt.in, got, err, links, tt.want, tt.links)
		}
	}
}
