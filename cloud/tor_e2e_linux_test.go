package main

import (
	"context"
	"crypto/ecdh"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"allium/internal/testkit"
	"allium/supervisor/restart"

	"allium/api"
	"allium/hiddenservice"
	"allium/internal/testbin"
	"allium/internal/tornet"
)

// torNet is the private Tor network this package's tor tests share.
var torNet tornet.Shared

func TestMain(m *testing.M) { os.Exit(torNet.Close(m.Run())) }

func torNetwork(t *testing.T) *tornet.Network { return torNet.Network(t) }

// publish puts the API server at target behind an onion on port 7707
// that lets in only client, and waits until it is published.
func publish(t *testing.T, n *tornet.Network, target string, client *ecdh.PublicKey) string {
	t.Helper()
	onionKey, err := hiddenservice.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := hiddenservice.NewService(hiddenservice.Onion{Key: onionKey, Clients: []*ecdh.PublicKey{client}, Port: 7707, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "acl") // short: the control socket's path has a limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	proc, err := hiddenservice.NewProcess(hiddenservice.Options{
		Config: hiddenservice.Config{DataDir: filepath.Join(dir, "data"), ControlSocket: filepath.Join(dir, "run", "control"), Extra: n.ClientLines()},
		Exe:    "/usr/sbin/tor", Starter: testkit.Starter, Service: svc,
		Log:    slog.New(slog.NewTextHandler(t.Output(), nil)),
		Policy: restart.Policy{Delay: 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- proc.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		<-done
	})
	deadline := time.Now().Add(2 * time.Minute)
	for st := proc.Status(); !st.Published; st = proc.Status() {
		if time.Now().After(deadline) {
			t.Fatalf("onion not published: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return svc.Address()
}

// cloudExe runs the real cloud binary and returns its exit code and
// output.
func cloudExe(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testbin.Path(t, "cloud"), args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	began := time.Now()
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	t.Logf("cloud %s: exit %d (%v) after %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, err,
		time.Since(began).Round(time.Millisecond), out.String(), errb.String())
	return code, out.String(), errb.String()
}

// TestOnionEndToEnd is issue 4's client path on a private Tor network:
// the real cloud reaches an API server behind an onion with client
// authorization, through a running tor and through its own, resumes an
// upload whose stream dropped, and explains a refusal of its x25519
// key in words.
func TestOnionEndToEnd(t *testing.T) {
	n := torNetwork(t)
	f := newFleet(t)
	cfg := api.Config{Dir: f.dir}
	key, _, err := hiddenservice.LoadOrCreateClientKeyFile(cfg.OnionKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	onion := publish(t, n, f.addr, key.PublicKey())
	if err := cfg.SaveAlias(api.Alias{Name: "hidden", Onion: onion + ":7707", NodeKey: api.FormatKey(f.nodeKey)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	running, err := n.StartClient(ctx, "running", nil)
	if err != nil {
		t.Fatal(err)
	}
	viaRunning := []string{"--config", f.dir, "--tor-socks", running.SocksAddr, "--tor-control", running.ControlSocket}

	t.Run("through a running tor", func(t *testing.T) {
		code, out, _ := cloudExe(t, append(viaRunning, "info", "hidden")...)
		if code != exitOK || !strings.Contains(out, testNode.Version) {
			t.Fatalf("cloud info hidden: exit %d, stdout %q; want 0 and the node's version", code, out)
		}
		if code, _, _ := cloudExe(t, append(viaRunning, "ps", "hidden")...); code != exitOK {
			t.Fatalf("cloud ps hidden: exit %d, want 0", code)
		}
		// The key was handed over for this run only, not stored in
		// that tor's ClientOnionAuthDir.
		if ents, _ := os.ReadDir(running.AuthDir); len(ents) != 0 {
			t.Errorf("the running tor's ClientOnionAuthDir holds %d files, want none", len(ents))
		}
	})

	t.Run("upload resumes after the stream drops", func(t *testing.T) {
		path, digest := writeArchive(t, t.TempDir(), "foo.tar", nil, imageEntries(goodManifest, app(600_000, 7)))
		f.backend.mu.Lock()
		f.backend.dropAt = 250_000
		f.backend.mu.Unlock()
		code, out, errOut := cloudExe(t, append(viaRunning, "start", "hidden", path)...)
		if code != exitOK {
			t.Fatalf("cloud start hidden: exit %d, want 0", code)
		}
		wantContains(t, "stderr of cloud start", errOut, "upload interrupted after sending", "resuming from there")
		wantContains(t, "stdout of cloud start", out, "resumed 1 time", "foo is running")
		f.backend.mu.Lock()
		defer f.backend.mu.Unlock()
		if !slices.Equal(f.backend.puts, []int64{0, 250_000}) {
			t.Errorf("PutImage offsets = %v, want [0 250000]: the upload restarted instead of resuming", f.backend.puts)
		}
		if _, ok := f.backend.images[digest]; !ok {
			t.Errorf("the node has no image %s after the resumed upload", digest)
		}
	})

	t.Run("through its own tor", func(t *testing.T) {
		rc := filepath.Join(t.TempDir(), "torrc")
		if err := os.WriteFile(rc, []byte(strings.Join(n.ClientLines(), "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, _ := cloudExe(t, "--config", f.dir, "--torrc", rc, "info", "hidden")
		if code != exitOK || !strings.Contains(out, testNode.Version) {
			t.Fatalf("cloud --torrc info hidden: exit %d, stdout %q; want 0 and the node's version", code, out)
		}
		if _, err := os.Stat(filepath.Join(f.dir, "tor", "onion_auth", hiddenservice.ID(onion)+".auth_private")); err != nil {
			t.Errorf("cloud's own tor has no key file for the onion: %v", err)
		}
		if locked(filepath.Join(f.dir, "tor", "lock")) {
			t.Errorf("cloud's own tor still holds %s/tor after cloud exited", f.dir)
		}
		// A second run reuses the data directory.
		if code, _, _ := cloudExe(t, "--config", f.dir, "--torrc", rc, "ps", "hidden"); code != exitOK {
			t.Errorf("second cloud --torrc ps hidden: exit %d, want 0", code)
		}
	})

	t.Run("x25519 key not authorized", func(t *testing.T) {
		other := t.TempDir()
		b, err := os.ReadFile(cfg.KeyPath())
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(other, "client.key"), b, 0o600) // same TLS key, other x25519 key
		if err := (api.Config{Dir: other}).SaveAlias(api.Alias{Name: "hidden", Onion: onion + ":7707", NodeKey: api.FormatKey(f.nodeKey)}); err != nil {
			t.Fatal(err)
		}
		// A tor of its own: the running one has the descriptor decrypted
		// with the authorized key already.
		fresh, err := n.StartClient(ctx, "fresh", nil)
		if err != nil {
			t.Fatal(err)
		}
		code, _, errOut := cloudExe(t, "--config", other, "--tor-socks", fresh.SocksAddr, "--tor-control", fresh.ControlSocket, "info", "hidden")
		if code != exitFailure {
			t.Errorf("cloud info hidden with an unauthorized x25519 key: exit %d, want %d", code, exitFailure)
		}
		// tor answers 0xF5 (it has a key, which does not decrypt the
		// descriptor) since cloud hands it one; 0xF4 (no key) reads
		// the same.
		wantContains(t, "stderr", errOut, "the onion's descriptor cannot be decrypted",
			"client.onion) is not authorized on hidden", "cloud keys hidden add")
	})
}
