package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"allium/api"
	"allium/internal/boltpage"
	"allium/internal/testbin"
	"allium/rootfs"
)

// The issue-10 bug, end to end: a damaged state.db went unnoticed (500
// on every call), and one damaged enough to be noticed was replaced by
// a fresh file seeded from the baked keys: the admin key revoked at run
// time worked again, the one added at run time was refused, the
// containers were lost and the boot's image collection deleted the
// image their roots used. init as PID 1 of an OS container, its
// state.db damaged between boots: first a containers page (recovered
// from the copy taken at the clean shutdown), then destroyed with its
// copies (the key journal and the roots on disk bring the rest back).
func TestPID1StateDamagedBetweenBoots(t *testing.T) {
	requireRoot(t)
	bin := testbin.Path(t, "init")
	dir, port, baked, nodeKey := newChroot(t, bin)
	ctx := context.Background()
	statePath := filepath.Join(dir, rootfs.StateFile)

	c := startContainerNode(t, dir, port, baked, nodeKey)
	c.waitUp()
	digest := pushBusybox(t, c, `{"version": 1, "name": "sleeper", "command": ["/bin/busybox", "sleep", "1000"]}`, nil)
	if _, err := c.unix().PutContainer(ctx, "sleeper", api.ContainerRequest{Image: digest}); err != nil {
		t.Fatalf("PutContainer: %v", err)
	}
	ops, _ := api.NewKey()
	if _, _, err := c.unix().AddKey(ctx, api.KeyRequest{Name: "ops", Key: api.FormatKey(ops.Public().(ed25519.PublicKey))}); err != nil {
		t.Fatalf("AddKey(ops): %v", err)
	}
	if _, err := c.unix().RemoveKey(ctx, "admin"); err != nil {
		t.Fatalf("RemoveKey(admin, the baked key): %v", err)
	}
	shutdown(t, c)
	backdate(t, dir, digest)

	// Boot 2: the containers' records damaged (headers intact).
	f, err := boltpage.Read(statePath)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := f.Find(boltpage.Leaf, "")
	for _, e := range p.Elems {
		if string(e.Key) == "containers" { // one container: inline in the root's leaf
			f.Flip(p.ID, e.ValOff+e.ValLen-20, 2)
		}
	}
	c = startContainerNode(t, dir, port, baked, nodeKey)
	n := c.waitUp()
	wantWarning(t, c, n, "recovered from the copy")
	checkAuth(t, c, baked, ops)
	waitContainer(t, c.unix(), "sleeper", is("running", api.StateRunning))
	checkImage(t, c, digest)
	shutdown(t, c)

	// Boot 3: state.db and its copies destroyed.
	os.Remove(statePath)
	os.RemoveAll(statePath + ".copies")
	c = startContainerNode(t, dir, port, baked, nodeKey)
	n = c.waitUp()
	wantWarning(t, c, n, "no good copy was left, so it started fresh")
	wantWarning(t, c, n, "container sleeper was rebuilt from its root on disk")
	checkAuth(t, c, baked, ops)
	waitContainer(t, c.unix(), "sleeper", is("stopped", api.StateStopped))
	checkImage(t, c, digest)
	if _, err := c.unix().StartContainer(ctx, "sleeper"); err != nil {
		t.Errorf("StartContainer(rebuilt sleeper) = %v", err)
	}
	waitContainer(t, c.unix(), "sleeper", is("running", api.StateRunning))
	shutdown(t, c)
}

func shutdown(t *testing.T, c *containerNode) {
	t.Helper()
	syscall.Kill(c.pid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("init did not exit within 30 s of SIGTERM")
	}
}

// backdate makes the image older than the collection's grace, so that
// only its users keep it.
func backdate(t *testing.T, dir, digest string) {
	t.Helper()
	info := filepath.Join(dir, rootfs.DataDir, "images", strings.TrimPrefix(digest, "sha256:"), "archive.info")
	b, err := os.ReadFile(info)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	json.Unmarshal(b, &v)
	v["created"] = time.Now().Add(-24 * time.Hour).UTC()
	b, _ = json.Marshal(v)
	os.WriteFile(info, b, 0o644)
}

// wantWarning waits for GET /v1/node to carry a warning containing s
// (the containers' are added once they are restored, after the API is
// up).
func wantWarning(t *testing.T, c *containerNode, n api.Node, s string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if slices.ContainsFunc(n.Warnings, func(w string) bool { return strings.Contains(w, s) }) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("GET /v1/node warnings = %q, want one saying %q", n.Warnings, s)
			return
		}
		if m, err := c.unix().Node(context.Background()); err == nil {
			n = m
		}
	}
}

// checkAuth: the baked key revoked at run time is refused over TLS, the
// key added at run time is served.
func checkAuth(t *testing.T, c *containerNode, baked, ops ed25519.PrivateKey) {
	t.Helper()
	ctx := context.Background()
	c.waitLog(`api: listening" network=tcp`)
	var apiErr *api.Error
	if _, err := c.tcp(baked).Node(ctx); !errors.As(err, &apiErr) || apiErr.Status != 401 {
		t.Errorf("GET /v1/node with the baked key revoked at run time = %v, want 401", err)
	}
	if _, err := c.tcp(ops).Node(ctx); err != nil {
		t.Errorf("GET /v1/node with the key added at run time = %v", err)
	}
}

// is matches a container the operator wants desired, in state.
func is(desired, state string) func(api.Container) bool {
	return func(c api.Container) bool { return c.Desired == desired && c.State == state }
}

func checkImage(t *testing.T, c *containerNode, digest string) {
	t.Helper()
	imgs, err := c.unix().Images(context.Background())
	if err != nil || !slices.ContainsFunc(imgs, func(i api.Image) bool { return i.Digest == digest }) {
		t.Errorf("Images() = %+v, %v; want %s kept (a container root uses it)", imgs, err, digest)
	}
}
