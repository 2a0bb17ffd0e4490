package apps

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"allium/api"
	"allium/internal/testkit"
	"allium/state"
	"allium/supervisor/isolation"
)

// fakeMounter has no overlayfs (so roots are copies, as on an OpenVZ
// kernel) and records the bind mounts of volumes.
type fakeMounter struct {
	mu    sync.Mutex
	binds []string
}

func (f *fakeMounter) Mount(source, target, fstype string, flags uintptr, data string) error {
	if fstype == "overlay" {
		return unix.ENODEV
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.binds = append(f.binds, source)
	return nil
}

func (f *fakeMounter) Unmount(string, int) error { return nil }

// node is a Service on a data root and state.db in a test directory.
type node struct {
	dir string
	db  *state.DB
	m   *fakeMounter
	svc *Service
}

func newNode(t *testing.T, dir string) *node {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	db, err := state.Open(filepath.Join(dir, "state.db"), log)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{dir: dir, db: db, m: &fakeMounter{}}
	n.svc, err = New(Options{DB: db, Data: filepath.Join(dir, "data"), Starter: testkit.Starter, Mounter: n.m, Log: log})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	return n
}

// close stops the containers, as a shutdown does, and closes state.db.
func (n *node) close(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.svc.Stop(ctx, 5*time.Second, ShutdownOperator); err != nil {
		t.Errorf("Stop: %v", err)
	}
	n.db.Close()
}

// image is a tar of manifest m and a rootfs with one file.
func image(t *testing.T, m string) (data []byte, digest string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range []struct {
		h    tar.Header
		body string
	}{
		{tar.Header{Name: "manifest.json", Typeflag: tar.TypeReg, Mode: 0o644}, m},
		{tar.Header{Name: "rootfs/", Typeflag: tar.TypeDir, Mode: 0o755}, ""},
		{tar.Header{Name: "rootfs/app", Typeflag: tar.TypeReg, Mode: 0o755}, "#!/nonexistent\n"},
	} {
		e.h.Size = int64(len(e.body))
		if err := tw.WriteHeader(&e.h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), "sha256:" + hex.EncodeToString(sum[:])
}

// The Service end to end without PID 1: an image pushed and unpacked in
// the helper, a container made of it (its root a copy, its volume bound)
// and recorded, refusals that name the reason, and a second Service on
// the same state.db (a reboot) that restores it.
func TestServiceImagesAndContainers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	n := newNode(t, dir)
	data, digest := image(t, `{"version": 1, "name": "web", "command": ["/app"], "volumes": [{"name": "db", "path": "/var/db"}]}`)
	img, err := n.svc.PutImage(ctx, digest, 0, int64(len(data)), bytes.NewReader(data))
	if err != nil || img.Name != "web" || img.Digest != digest {
		t.Fatalf("PutImage = %+v, %v; want image web %s", img, err, digest)
	}
	if _, err := n.svc.PutContainer(ctx, "web", api.ContainerRequest{Image: "sha256:" + strings.Repeat("0", 64)}); !isStatus(err, 404) {
		t.Errorf("PutContainer of an image not pushed = %v, want 404", err)
	}
	c, err := n.svc.PutContainer(ctx, "web", api.ContainerRequest{Image: digest})
	if err != nil || c.Name != "web" || c.Image != digest || c.Desired != "running" {
		t.Fatalf("PutContainer = %+v, %v", c, err)
	}
	if b, err := os.ReadFile(filepath.Join(ContainersDir(n.svc.roots.data), "web", "app")); err != nil || len(b) == 0 {
		t.Errorf("the root of web is not a copy of the image: %v", err)
	}
	if want := filepath.Join(dir, "data", "volumes", "web", "db"); !slices.Contains(n.m.binds, want) {
		t.Errorf("bind mounts = %v, want the volume %s", n.m.binds, want)
	}
	imgs, err := n.svc.Images(ctx)
	if err != nil || len(imgs) != 1 || !slices.Equal(imgs[0].UsedBy, []string{"web"}) {
		t.Errorf("Images = %+v, %v; want one, used by web", imgs, err)
	}
	if err := n.svc.RemoveImage(ctx, digest); !isStatus(err, 409) {
		t.Errorf("RemoveImage of an image in use = %v, want 409", err)
	}
	if _, err := n.svc.StopContainer(ctx, "web"); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	n.close(t)

	n = newNode(t, dir) // a reboot
	defer n.close(t)
	if w := n.svc.Restore(); len(w) != 0 {
		t.Errorf("Restore warnings = %v, want none", w)
	}
	cs, err := n.svc.Containers(ctx)
	if err != nil || len(cs) != 1 || cs[0].Name != "web" || cs[0].Desired != "stopped" || cs[0].State != api.StateStopped {
		t.Fatalf("Containers after a reboot = %+v, %v; want web, stopped as the operator left it", cs, err)
	}
	if st, err := n.svc.ContainerStats(ctx, "web"); err != nil || st.Name != "web" || st.Cgroup {
		t.Errorf("ContainerStats(web) without cgroups = %+v, %v; want no cgroup", st, err)
	}
	if _, err := n.svc.ContainerStats(ctx, "nosuch"); !isStatus(err, 404) {
		t.Errorf("ContainerStats(nosuch) = %v, want 404", err)
	}
	if err := n.svc.RemoveContainer(ctx, "web"); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
	if _, err := n.svc.Container(ctx, "web"); !isStatus(err, 404) {
		t.Errorf("Container after RemoveContainer = %v, want 404", err)
	}
	if err := n.svc.RemoveImage(ctx, digest); err != nil {
		t.Errorf("RemoveImage once unused: %v", err)
	}
}

// A container whose image is gone is reported by Restore, not lost.
func TestRestoreReportsAMissingImage(t *testing.T) {
	n := newNode(t, t.TempDir())
	defer n.close(t)
	gone := "sha256:" + strings.Repeat("a", 64)
	if err := n.db.PutContainer(state.Container{Name: "old", Image: gone, Running: true}); err != nil {
		t.Fatal(err)
	}
	w := n.svc.Restore()
	if len(w) != 1 || !strings.Contains(w[0], "container old") {
		t.Errorf("Restore warnings = %q, want one naming container old", w)
	}
}

func isStatus(err error, code int) bool {
	var e *api.Error
	return errors.As(err, &e) && e.Status == code
}

// A manifest whose isolation.minimum the node cannot meet is refused,
// naming the missing rung, and nothing is created; a container gets the
// node's rung, recorded in state.db.
func TestIsolationMinimum(t *testing.T) {
	ctx := context.Background()
	n := newNode(t, t.TempDir())
	defer n.close(t)
	n.svc.iso = func() isolation.Report {
		return isolation.Report{Highest: isolation.Chroot, Checks: []isolation.Check{
			{Name: "mount", OK: true}, {Name: "private_mounts", OK: true}, {Name: "pid", Why: "EPERM"},
			{Name: "uts", OK: true}, {Name: "ipc", OK: true}}}
	}
	data, digest := image(t, `{"version": 1, "name": "strict", "command": ["/app"], "isolation": {"minimum": "namespaces"}}`)
	if _, err := n.svc.PutImage(ctx, digest, 0, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	_, err := n.svc.PutContainer(ctx, "strict", api.ContainerRequest{Image: digest})
	if !isStatus(err, 409) || !strings.Contains(err.Error(), "needs isolation namespaces") || !strings.Contains(err.Error(), "pid: EPERM") {
		t.Errorf("PutContainer(minimum namespaces) on a chroot node = %v, want 409 naming the rung and pid: EPERM", err)
	}
	if cs, _ := n.db.Containers(); len(cs) != 0 {
		t.Errorf("containers after the refusal = %+v, want none", cs)
	}
	if _, err := os.Stat(filepath.Join(ContainersDir(n.svc.roots.data), "strict")); err == nil {
		t.Error("the refused container's root was made")
	}

	for body, want := range map[string]string{
		`"resources": {"memory": "64M"}`:      "need cgroups, which this node lacks",
		`"isolation": {"network": "private"}`: "isolation.network private",
	} {
		data, digest := image(t, `{"version": 1, "name": "asks", "command": ["/app"], `+body+`}`)
		n.svc.PutImage(ctx, digest, 0, int64(len(data)), bytes.NewReader(data))
		if _, err := n.svc.PutContainer(ctx, "asks", api.ContainerRequest{Image: digest}); !isStatus(err, 409) || !strings.Contains(err.Error(), want) {
			t.Errorf("PutContainer(%s) on a node without cgroups = %v, want 409 containing %q", body, err, want)
		}
	}
	if cs, _ := n.db.Containers(); len(cs) != 0 {
		t.Errorf("containers after the refusals = %+v, want none", cs)
	}

	data, digest = image(t, `{"version": 1, "name": "easy", "command": ["/app"]}`)
	n.svc.PutImage(ctx, digest, 0, int64(len(data)), bytes.NewReader(data))
	c, err := n.svc.PutContainer(ctx, "easy", api.ContainerRequest{Image: digest})
	if err != nil || c.Isolation != "chroot" {
		t.Fatalf("PutContainer(easy) = %+v, %v; want isolation chroot", c, err)
	}
	if cs, _ := n.db.Containers(); len(cs) != 1 || cs[0].Isolation != "chroot" {
		t.Errorf("state.db records %+v, want easy at chroot", cs)
	}
}
