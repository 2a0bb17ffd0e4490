package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"allium/api"
	"allium/hiddenservice"
	"allium/internal/testbin"
	"allium/internal/tornet"
	"allium/rootfs"
)

// The tor tier through the real binaries: init as PID 1 in OS-container
// mode runs the host's tor (its /usr bound into the node's root) on the
// private network, and the real cloud reaches the node's API through
// the onion with a client tor of the network.

// onionNode is a node with an onion service and a cloud configuration
// authorized to reach it.
type onionNode struct {
	*containerNode
	onion string // ID.onion:PORT
	cloud string // the cloud binary
	cfg   string // cloud's configuration directory
	cli   *tornet.Client
}

// startOnionNode lays out a node whose onion has one authorized client,
// the admin of cfg, and starts it.
func startOnionNode(t testing.TB, nw *tornet.Network) *onionNode {
	t.Helper()
	if _, err := os.Stat(rootfs.TorExe); err != nil {
		t.Skipf("tor tier: no %s (apt-get install tor)", rootfs.TorExe)
	}
	dir, port, client, node := newChroot(t, testbin.Path(t, "init"))
	os.Chmod(dir, 0o755) // tor, once it is its own user, must get through /
	cfg := api.Config{Dir: filepath.Join(t.TempDir(), "cloud")}
	writeClientKey(t, cfg, client)
	onionClient, _, err := hiddenservice.LoadOrCreateClientKeyFile(cfg.OnionKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	onionKey, _ := hiddenservice.NewKey()
	pem, _ := hiddenservice.MarshalKey(onionKey)
	files := map[string]string{
		rootfs.OnionKeyFile: string(pem),
		rootfs.AuthorizedKeysFile: string(api.FormatAuthorizedKeys([]api.AuthorizedKey{
			{Key: client.Public().(ed25519.PublicKey), Onion: onionClient.PublicKey().Bytes(), Name: "admin"}})),
		rootfs.NodeConfigFile: nodeConfigWithTor(t, port, nw),
		"etc/passwd":          fmt.Sprintf("root:x:0:0:root:/root:/bin/false\n%s:x:%d:%d::%s:/bin/false\n", rootfs.TorUser, rootfs.TorUID, rootfs.TorUID, rootfs.TorDataDir),
		"etc/group":           fmt.Sprintf("root:x:0:\n%s:x:%d:\n", rootfs.TorUser, rootfs.TorUID),
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(dir, "etc/passwd"), 0o644)
	os.Chmod(filepath.Join(dir, "etc/group"), 0o644)
	// Debian merges /usr: the loader and libraries are reached through
	// /lib and /lib64, which point into /usr.
	for _, l := range []string{"lib", "lib64"} {
		os.Symlink("usr/"+l, filepath.Join(dir, l))
	}
	o := &onionNode{
		containerNode: startContainerNodeWith(t, dir, port, client, node, []string{"/usr"}),
		onion:         hiddenservice.KeyAddress(onionKey) + ":" + strconv.Itoa(rootfs.DefaultPort),
		cloud:         testbin.Path(t, "cloud"),
		cfg:           cfg.Dir,
	}
	o.waitUp()
	if err := cfg.SaveAlias(api.Alias{Name: "ct1", Onion: o.onion, NodeKey: api.FormatKey(node)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if o.cli, err = nw.StartClient(ctx, "cli"+strconv.Itoa(port), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.cli.Close)
	o.waitPublished(t, 0)
	return o
}

// nodeConfigWithTor is node.json for a node whose tor joins the private
// network. The harness's __OwningControllerProcess is left out: its
// pid means nothing in the node's pid namespace.
func nodeConfigWithTor(t testing.TB, port int, nw *tornet.Network) string {
	var lines []string
	for _, l := range nw.ClientLines() {
		if !strings.HasPrefix(l, "__OwningControllerProcess") {
			lines = append(lines, strconv.Quote(l))
		}
	}
	return fmt.Sprintf(`{"name":"ct1","port":%d,"tor":{"torrc":[%s]}}`, port, strings.Join(lines, ","))
}

func writeClientKey(t testing.TB, cfg api.Config, key ed25519.PrivateKey) {
	t.Helper()
	pem, err := api.MarshalPrivateKey(key)
	if err == nil {
		err = api.WriteFileAtomic(cfg.KeyPath(), pem, 0o600)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// waitPublished waits until the node's tor has published the onion
// after more than restarts restarts, and returns its status.
func (o *onionNode) waitPublished(t testing.TB, restarts int) *api.Tor {
	t.Helper()
	var last *api.Tor
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		n, err := o.unix().Node(ctx)
		cancel()
		if err == nil && n.Tor != nil {
			last = n.Tor
			if last.Published && last.Restarts >= restarts && last.Onion == o.onion {
				return last
			}
			if last.State == "crashloop" {
				break
			}
		}
	}
	t.Fatalf("the node never published its onion %s; last tor status %+v", o.onion, last)
	return nil
}

// run runs the real cloud with cfg through the test's client tor.
func (o *onionNode) run(ctx context.Context, cfg string, args ...string) (string, error) {
	return o.runVia(ctx, o.cli, cfg, args...)
}

// runVia runs the real cloud with cfg through the client tor cli.
func (o *onionNode) runVia(ctx context.Context, cli *tornet.Client, cfg string, args ...string) (string, error) {
	args = append([]string{"--config", cfg, "--tor-socks", cli.SocksAddr, "--tor-control", cli.ControlSocket}, args...)
	out, err := exec.CommandContext(ctx, o.cloud, args...).CombinedOutput()
	return string(out), err
}

// runOK runs cloud until it succeeds, for as long as the onion may be
// settling (a fresh descriptor, a client tor stuck on an old circuit:
// cloud itself retries those).
func (o *onionNode) runOK(t *testing.T, args ...string) string {
	t.Helper()
	var out string
	var err error
	for attempt := 1; attempt <= 4; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		out, err = o.run(ctx, o.cfg, args...)
		cancel()
		if err == nil {
			return out
		}
		t.Logf("cloud %s (attempt %d): %v\n%s", strings.Join(args, " "), attempt, err, out)
	}
	t.Fatalf("cloud %s: %v\n%s", strings.Join(args, " "), err, out)
	return ""
}

// copyConfig makes another cloud configuration: cfg's files, then
// files replaced.
func copyConfig(t *testing.T, from string, files map[string][]byte) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "cloud")
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		b, err := os.ReadFile(p)
		if err == nil {
			os.MkdirAll(filepath.Join(to, filepath.Dir(rel)), 0o700)
			err = os.WriteFile(filepath.Join(to, rel), b, 0o600)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(to, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// torPID finds the node's tor on the host: the tor whose parent is
// init.
func (o *onionNode) torPID(t testing.TB) int {
	pids := tornet.ChildrenOf(o.pid, "tor")
	if len(pids) != 1 {
		t.Fatalf("tor children of init (pid %d): %v, want one", o.pid, pids)
	}
	return pids[0]
}

func TestOnionEndToEnd(t *testing.T) {
	requireRoot(t)
	nw := torNetwork(t)
	o := startOnionNode(t, nw)

	t.Run("info, start, ps and logs through the onion", func(t *testing.T) {
		if out := o.runOK(t, "info", "ct1"); !strings.Contains(out, "ct1") || !strings.Contains(out, o.onion) {
			t.Errorf("cloud info ct1 through the onion:\n%s\nwant the node's name and its onion", out)
		}
		data, _ := busyboxImage(t, "hello", `echo "hello through the onion"; exec busybox sleep 1000`)
		img := filepath.Join(t.TempDir(), "hello.tgz")
		os.WriteFile(img, data, 0o644)
		o.runOK(t, "start", "ct1", img)
		if out := o.runOK(t, "ps", "ct1"); !strings.Contains(out, "hello") || !strings.Contains(out, "running") {
			t.Errorf("cloud ps ct1:\n%s\nwant hello running", out)
		}
		if out := o.runOK(t, "logs", "ct1", "hello"); !strings.Contains(out, "hello through the onion") {
			t.Errorf("cloud logs ct1 hello:\n%s\nwant the workload's line", out)
		}
	})

	t.Run("a client without an authorized x25519 key cannot find the onion", func(t *testing.T) {
		// A client tor of its own: one that has already fetched and
		// decrypted the descriptor with the admin's key would keep it.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cli, err := nw.StartClient(ctx, "stranger"+strconv.Itoa(o.port), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		stranger, _ := hiddenservice.NewClientKey()
		cfg := copyConfig(t, o.cfg, map[string][]byte{"client.onion": []byte(hiddenservice.FormatClientPrivateKey(stranger) + "\n")})
		out, err := o.runVia(ctx, cli, cfg, "info", "ct1")
		if err == nil || !strings.Contains(out, "x25519") || !strings.Contains(out, "not authorized") {
			t.Errorf("cloud info ct1 with an unknown x25519 key = %v:\n%s\nwant an error that says the x25519 key is not authorized", err, out)
		}
	})

	t.Run("a client with the x25519 key but an unknown TLS key gets 401", func(t *testing.T) {
		other, _ := api.NewKey()
		pem, _ := api.MarshalPrivateKey(other)
		cfg := copyConfig(t, o.cfg, map[string][]byte{"client.key": pem})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := o.run(ctx, cfg, "info", "ct1")
		if err == nil || !strings.Contains(out, "not authorized") || !strings.Contains(out, api.Fingerprint(other.Public().(ed25519.PublicKey))) {
			t.Errorf("cloud info ct1 with an unknown TLS key = %v:\n%s\nwant the node's 401 naming the key", err, out)
		}
	})

	t.Run("kill tor: the same onion answers again", func(t *testing.T) {
		before := o.waitPublished(t, 0)
		if err := syscall.Kill(o.torPID(t), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		after := o.waitPublished(t, before.Restarts+1)
		if after.Onion != before.Onion || after.PID == before.PID {
			t.Errorf("after killing tor: %+v, want a new tor serving %s", after, before.Onion)
		}
		if out := o.runOK(t, "info", "ct1"); !strings.Contains(out, "ct1") {
			t.Errorf("cloud info ct1 after tor's restart:\n%s", out)
		}
	})

	t.Run("a removed key stops working on the onion", func(t *testing.T) {
		tls, _ := api.NewKey()
		x, _ := hiddenservice.NewClientKey()
		pem, _ := api.MarshalPrivateKey(tls)
		cfg := copyConfig(t, o.cfg, map[string][]byte{"client.key": pem, "client.onion": []byte(hiddenservice.FormatClientPrivateKey(x) + "\n")})
		line := api.FormatKey(tls.Public().(ed25519.PublicKey)) + " " + api.FormatOnionKey(x.PublicKey().Bytes())
		o.runOK(t, append([]string{"keys", "ct1", "add", "laptop"}, strings.Fields(line)...)...)
		o.waitPublished(t, 0)
		if err := runUntil(t, func(ctx context.Context) error { return cloudErr(o.run(ctx, cfg, "info", "ct1")) }); err != nil {
			t.Fatalf("cloud info ct1 with the added key: %v", err)
		}
		o.runOK(t, "keys", "ct1", "rm", "laptop")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := o.run(ctx, cfg, "info", "ct1")
		if err == nil {
			t.Errorf("cloud info ct1 with a removed key succeeded:\n%s", out)
		}
		t.Logf("cloud info ct1 with the removed key: %v\n%s", err, out)
		if out := o.runOK(t, "info", "ct1"); !strings.Contains(out, "ct1") {
			t.Errorf("the admin after removing another key:\n%s", out)
		}
	})
}

// cloudErr folds cloud's output into its error.
func cloudErr(out string, err error) error {
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	return nil
}

// runUntil retries f with a fresh 90 s context, up to four times.
func runUntil(t *testing.T, f func(ctx context.Context) error) error {
	var err error
	for attempt := 1; attempt <= 4; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		err = f(ctx)
		cancel()
		if err == nil || errors.Is(err, context.Canceled) {
			return err
		}
		t.Logf("attempt %d: %v", attempt, err)
	}
	return err
}
