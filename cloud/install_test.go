package main

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"allium/api"
)

func TestParseSSHTarget(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"root@203.0.113.7", "root@203.0.113.7", ""},
		{"root@203.0.113.7:2222", "root@203.0.113.7:2222", ""},
		{"myvps", "myvps", ""},
		{"admin@[2001:db8::7]:22", "admin@2001:db8::7:22", ""},
		{"2001:db8::7", "2001:db8::7", ""},
		{"root@host:0", "", `port "0": want 1-65535`},
		{"root@host:ssh", "", `port "ssh": want 1-65535`},
		{"@host", "", "empty user before @"},
		{"", "", "empty"},
		{"-oProxyCommand=x", "", `host "-oProxyCommand=x": want a host name`},
		{"root@a b", "", `host "a b"`},
	} {
		got, err := parseSSHTarget(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseSSHTarget(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || got.String() != tc.want):
			t.Errorf("parseSSHTarget(%q) = %v, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// fakeSSH is an ssh client that runs the remote command here, with
// /var/tmp moved into the test's directory: $FAKE_SSH_FAIL=1 fails to
// connect, $FAKE_SSH_LOSE=1 loses the connection after the command's
// output.
const fakeSSH = `#!/bin/sh
log=$FAKE_DIR/ssh.log
cmd=
while [ $# -gt 0 ]; do
	case $1 in
	-G) echo "hostname 127.0.0.1"; echo "port 22"; exit 0 ;;
	-O) echo "-O $2" >>"$log"; exit 0 ;;
	-o | -p | -F) shift ;;
	--) shift; cmd=$1 ;;
	esac
	shift
done
echo "run $cmd" >>"$log"
if [ -n "${FAKE_SSH_FAIL:-}" ]; then
	echo "ssh: connect to host 127.0.0.1 port 22: Connection refused" >&2
	exit 255
fi
cmd=$(printf '%s' "$cmd" | sed "s|/var/tmp|$FAKE_DIR|g")
sh -c "$cmd"
rc=$?
case $cmd in *--yes*) if [ -n "${FAKE_SSH_LOSE:-}" ]; then echo "Connection to 127.0.0.1 closed by remote host." >&2; exit 255; fi ;; esac
exit $rc
`

// fakeBundle prints what install.sh prints for $FAKE_INSTALL: ok (it
// switches), refuse (its preflight fails), stop (a step fails) or lost
// (the connection goes before the switch).
const fakeBundle = `#!/bin/sh
# Allium install bundle, a test's
echo "Allium node web1: preflight"
case $FAKE_INSTALL in
refuse) echo "  FAIL  kexec        kexec is disabled"; echo "install.sh: refusing: kexec: kexec is disabled; nothing was changed" >&2; exit 1 ;;
esac
echo "  ok    root         running as root"
[ "$1" = --dry-run ] && { echo "plan: kexec trial (kvm)"; exit 0; }
echo "step  files        /boot/allium: vmlinuz, initrd.img, kexec"
case $FAKE_INSTALL in
lost) touch "$FAKE_DIR/switched"; exit 0 ;;
stop) echo "install.sh: write /boot/allium/vmlinuz: 12 KiB free" >&2; exit 1 ;;
esac
echo "step  load         kexec load: console=ttyS0"
echo "step  switch       kexec into the node in 2 s; this connection will drop"
touch "$FAKE_DIR/switched"
`

// installedNode is a node that answers once install.sh has switched to
// it (the fake bundle's switch step leaves a file).
type installedNode struct {
	*fakeBackend
	switched string
}

func (b installedNode) Node(ctx context.Context) (api.Node, error) {
	if _, err := os.Stat(b.switched); err != nil {
		return api.Node{}, api.Unavailable("not installed yet")
	}
	return b.fakeBackend.Node(ctx)
}

func installFleet(t *testing.T, mode string, env ...string) (*fleet, string) {
	t.Helper()
	dir := t.TempDir()
	f := &fleet{dir: t.TempDir(), backend: &fakeBackend{fakeApps: newFakeApps(), node: testNode}}
	client, _, err := api.Config{Dir: f.dir}.LoadOrCreateClientKey()
	if err != nil {
		t.Fatal(err)
	}
	f.backend.authorized = client.Public().(ed25519.PublicKey)
	f.addr, f.nodeKey = serve(t, installedNode{f.backend, filepath.Join(dir, "switched")})
	f.alias(t, "web1", f.addr, f.nodeKey)
	bundle := filepath.Join(dir, "install.sh")
	ssh := filepath.Join(dir, "ssh")
	if err := os.WriteFile(bundle, []byte(fakeBundle), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ssh, []byte(fakeSSH), 0o755); err != nil {
		t.Fatal(err)
	}
	a, err := api.Config{Dir: f.dir}.Alias("web1")
	if err != nil {
		t.Fatal(err)
	}
	a.Bundle = bundle
	if err := (api.Config{Dir: f.dir}).SaveAlias(a); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CLOUD_SSH", ssh)
	t.Setenv("FAKE_DIR", dir)
	t.Setenv("FAKE_INSTALL", mode)
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		t.Setenv(k, v)
	}
	return f, dir
}

func TestInstall(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mode   string
		env    []string
		args   []string
		code   int
		out    []string // in stdout
		errout string   // in stderr
	}{
		{"switches", "ok", nil, nil, exitOK, []string{
			"web1: copying", "running install.sh --yes on root@127.0.0.1", "  step  switch", "web1: installed in",
			"(copy ", "preflight ", "install ", "switch and boot ", "version", "v0.1.0-test"}, ""},
		{"permanent", "ok", nil, []string{"--permanent"}, exitOK, []string{"running install.sh --yes --permanent"}, ""},
		{"dry run", "ok", nil, []string{"--dry-run"}, exitOK, []string{"running install.sh --dry-run", "  plan: kexec trial (kvm)"}, ""},
		{"refused", "refuse", nil, nil, exitFailure, []string{"  FAIL  kexec"}, "install.sh on root@127.0.0.1 refused (exit 1): see its findings above; nothing was changed"},
		{"a step fails", "stop", nil, nil, exitFailure, []string{"step  files"}, "stopped at step files (exit 1): see above; the old system still boots as it did"},
		{"no ssh", "ok", []string{"FAKE_SSH_FAIL=1"}, nil, exitFailure, nil,
			"cloud: copying install.sh: ssh to root@127.0.0.1 failed: ssh: connect to host 127.0.0.1 port 22: Connection refused; nothing was changed"},
		{"lost", "lost", []string{"FAKE_SSH_LOSE=1"}, nil, exitOK, []string{"web1: installed in"},
			"the ssh connection was lost during step files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, dir := installFleet(t, tc.mode, tc.env...)
			code, stdout, stderr := f.cloud(t, append([]string{"install", "web1", "--ssh", "root@127.0.0.1"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("cloud install = %d, want %d", code, tc.code)
			}
			for _, w := range tc.out {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q", w)
				}
			}
			if !strings.Contains(stderr, tc.errout) {
				t.Errorf("stderr lacks %q", tc.errout)
			}
			log, _ := os.ReadFile(filepath.Join(dir, "ssh.log"))
			if tc.env == nil && !strings.Contains(string(log), "-O exit") {
				t.Errorf("the control master was not stopped; ssh.log:\n%s", log)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "allium-install.sh")); tc.env == nil && (err != nil || string(b) != fakeBundle) {
				t.Errorf("the bundle did not arrive whole: %v", err)
			}
		})
	}
}

// A second install where the node already answers at the alias's
// address is refused before ssh runs.
func TestInstallRunningNode(t *testing.T) {
	f, dir := installFleet(t, "ok")
	if err := os.WriteFile(filepath.Join(dir, "switched"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := f.cloud(t, "install", "web1", "--ssh", "root@203.0.113.7")
	if code != exitFailure || !strings.Contains(stderr, "web1 already answers at "+f.addr+" as an Allium node (vm, boot 7): nothing to install") {
		t.Errorf("cloud install of a running node = %d, want a refusal; stderr:\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "ssh.log")); err == nil {
		t.Error("ssh ran for a node that is installed already")
	}
}

func TestUninstallCommand(t *testing.T) {
	f := newFleet(t)
	code, _, stderr := f.cloud(t, "uninstall", "web1")
	if code != exitFailure || !strings.Contains(stderr, "not installed over another system") {
		t.Errorf("cloud uninstall of a node not installed = %d, %q; want a failure with the reason", code, stderr)
	}
	f.backend.node.Install = "kexec"
	code, stdout, _ := f.cloud(t, "uninstall", "web1")
	if code != exitOK || stdout != "web1: a trial install: rebooting into the old system\n" {
		t.Errorf("cloud uninstall = %d, %q; want the node's answer", code, stdout)
	}
}
