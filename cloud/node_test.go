package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"allium/api"
	"allium/internal/cli"
)

// fakeBackend is a node that counts, and keeps its images and
// containers in memory.
type fakeBackend struct {
	*fakeApps
	api.UnimplementedKeys
	fakeInits
	node       api.Node
	authorized ed25519.PublicKey

	reboots, poweroffs atomic.Int32
	requests           atomic.Int32 // every request is authorized first
}

func (b *fakeBackend) Node(context.Context) (api.Node, error) {
	n := b.node
	if v := b.runningVersion(); v != "" {
		n.Version = v
	}
	return n, nil
}
func (b *fakeBackend) Reboot() error   { b.reboots.Add(1); return nil }
func (b *fakeBackend) Poweroff() error { b.poweroffs.Add(1); return nil }
func (b *fakeBackend) Uninstall() (string, error) {
	if b.node.Install == "" {
		return "", errors.New("this node was not installed over another system")
	}
	b.reboots.Add(1)
	return "a trial install: rebooting into the old system", nil
}
func (b *fakeBackend) SetTCP(on bool) error {
	b.node.TCP = map[bool]string{true: ":7707", false: "off"}[on]
	return nil
}
func (b *fakeBackend) Authorize(k ed25519.PublicKey) (string, bool) {
	b.requests.Add(1)
	return api.RoleAdmin, k.Equal(b.authorized)
}

// fleet is a config dir whose client key a real api.Server on a
// loopback listener authorizes, with the alias web1 for it.
type fleet struct {
	dir     string
	addr    string
	nodeKey ed25519.PublicKey
	backend *fakeBackend
}

var testNode = api.Node{
	Name:          "web1",
	Version:       "v0.1.0-test",
	Kernel:        "6.1.0-28-cloud-amd64",
	UptimeSeconds: 3723.4,
	BootCount:     7,
	Environment:   api.EnvVM,
	Persistent:    true,
	Data:          "/dev/vda LABEL=allium-data",
	Memory:        api.Memory{Total: 1024 << 20, Available: 800 << 20, InitRSS: 12 << 20},
	Warnings:      []string{"no cgroups: resource limits are not enforced", "clock was reset"},
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	f := &fleet{dir: t.TempDir(), backend: &fakeBackend{fakeApps: newFakeApps(), node: testNode}}
	client, _, err := api.Config{Dir: f.dir}.LoadOrCreateClientKey()
	if err != nil {
		t.Fatal(err)
	}
	f.backend.authorized = client.Public().(ed25519.PublicKey)
	f.addr, f.nodeKey = serve(t, f.backend)
	f.alias(t, "web1", f.addr, f.nodeKey)
	return f
}

// serve runs an api.Server for b on a loopback listener.
func serve(t *testing.T, b api.Backend) (string, ed25519.PublicKey) {
	t.Helper()
	key, err := api.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.NewServer(b, key, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return ln.Addr().String(), key.Public().(ed25519.PublicKey)
}

func (f *fleet) alias(t *testing.T, name, addr string, key ed25519.PublicKey) {
	t.Helper()
	a := api.Alias{Name: name, Address: addr, NodeKey: api.FormatKey(key)}
	if err := (api.Config{Dir: f.dir}).SaveAlias(a); err != nil {
		t.Fatal(err)
	}
}

// cloud runs the CLI in-process against f's config dir.
func (f *fleet) cloud(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCloud(t, append([]string{"--config", f.dir}, args...)...)
}

// The exit codes runCloud returns, by the short names the tests use.
const (
	exitOK      = cli.ExitOK
	exitFailure = cli.ExitFailure
	exitUsage   = cli.ExitUsage
)

func runCloud(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(t.Context(), args, strings.NewReader(""), &out, &errb)
	t.Logf("cloud %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out.String(), errb.String())
	return code, out.String(), errb.String()
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func wantContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s = %q, want it to contain %q", what, got, w)
		}
	}
}
