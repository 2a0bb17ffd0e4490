package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"allium/api"
	"allium/internal/testbin"
)

// The root tier, images and containers end to end through the real init
// in OS-container mode: upload, unpack in the helper, run in a chroot,
// restart after a kill, logs, stop, and what a second boot restores.

// busyboxImage builds a gzip'd native image whose workload prints a
// line and then sleeps.
func busyboxImage(t *testing.T, name, script string) (data []byte, digest string) {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("root tier: /bin/busybox missing (apt-get install busybox-static)")
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	add := func(h *tar.Header, body []byte) {
		h.Size = int64(len(body))
		if h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeDir {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	manifest := `{"version":1,"name":"` + name + `","command":["/bin/sh","-c",` + quoteJSON(script) + `],"user":"nobody","restart":{"delay":"100ms"}}`
	add(&tar.Header{Name: "manifest.json", Mode: 0o644, Typeflag: tar.TypeReg}, []byte(manifest))
	for _, d := range []string{"rootfs/", "rootfs/bin/", "rootfs/etc/", "rootfs/tmp/"} {
		add(&tar.Header{Name: d, Mode: 0o755, Typeflag: tar.TypeDir}, nil)
	}
	add(&tar.Header{Name: "rootfs/bin/busybox", Mode: 0o755, Typeflag: tar.TypeReg}, bb)
	add(&tar.Header{Name: "rootfs/bin/sh", Linkname: "busybox", Typeflag: tar.TypeSymlink}, nil)
	add(&tar.Header{Name: "rootfs/etc/passwd", Mode: 0o644, Typeflag: tar.TypeReg}, []byte("root:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n"))
	add(&tar.Header{Name: "rootfs/etc/group", Mode: 0o644, Typeflag: tar.TypeReg}, []byte("root:x:0:\nnogroup:x:65534:\n"))
	tw.Close()
	zw.Close()
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), "sha256:" + hex.EncodeToString(sum[:])
}

func quoteJSON(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// waitContainer polls until ok accepts the container.
func waitContainer(t *testing.T, c *api.Client, name string, ok func(api.Container) bool) api.Container {
	t.Helper()
	var last api.Container
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ct, err := c.Container(context.Background(), name)
		if err == nil && ok(ct) {
			return ct
		}
		last = ct
	}
	t.Fatalf("container %s never got there; last seen %+v", name, last)
	return last
}

func TestAppsInOSContainer(t *testing.T) {
	requireRoot(t)
	bin := testbin.Path(t, "init")
	dir, port, client, node := newChroot(t, bin)
	n := startContainerNode(t, dir, port, client, node)
	n.waitUp()
	c := n.unix()
	ctx := context.Background()

	data, digest := busyboxImage(t, "hello", `echo "hello from $(busybox id -u)"; exec busybox sleep 1000`)
	img, err := c.Upload(ctx, digest, bytes.NewReader(data), int64(len(data)), api.UploadOptions{})
	if err != nil || img.Name != "hello" {
		t.Fatalf("Upload(hello) = %+v, %v", img, err)
	}
	if _, err := c.PutContainer(ctx, "hello", api.ContainerRequest{Image: digest}); err != nil {
		t.Fatalf("PutContainer(hello) = %v", err)
	}
	first := waitContainer(t, c, "hello", func(ct api.Container) bool { return ct.State == api.StateRunning && ct.PID > 0 })
	// The overlay is mounted in init's mount namespace: look through its
	// root (/containers is an absolute link, which would resolve here).
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/root/var/lib/allium/containers/hello/bin/busybox", n.pid)); err != nil {
		t.Errorf("/containers/hello has no image contents: %v", err)
	}
	waitLog(t, c, "hello", "hello from 65534")

	// Killed from the API side, it is a crash: it comes back.
	if _, err := c.SignalContainer(ctx, "hello", "KILL"); err != nil {
		t.Fatalf("SignalContainer(hello, KILL) = %v", err)
	}
	again := waitContainer(t, c, "hello", func(ct api.Container) bool {
		return ct.State == api.StateRunning && ct.Restarts == 1 && ct.PID != first.PID
	})
	if again.LastExit == nil || again.LastExit.Signal != "SIGKILL" {
		t.Errorf("after the kill: last exit %+v, want SIGKILL", again.LastExit)
	}

	// A second container, stopped by the operator, stays stopped across a boot.
	data2, digest2 := busyboxImage(t, "idle", `exec busybox sleep 1000`)
	if _, err := c.Upload(ctx, digest2, bytes.NewReader(data2), int64(len(data2)), api.UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	c.PutContainer(ctx, "idle", api.ContainerRequest{Image: digest2})
	waitContainer(t, c, "idle", func(ct api.Container) bool { return ct.State == api.StateRunning })
	if _, err := c.StopContainer(ctx, "idle"); err != nil {
		t.Fatal(err)
	}

	syscall.Kill(n.pid, syscall.SIGTERM)
	<-n.done
	checkOrder(t, n.logs.String(), "shutdown: stopping containers", "shutdown: stopping processes", "shutdown: closing state")

	n2 := startContainerNode(t, dir, port, client, node)
	n2.waitUp()
	c2 := n2.unix()
	back := waitContainer(t, c2, "hello", func(ct api.Container) bool { return ct.State == api.StateRunning })
	if back.Restarts != 1 {
		t.Errorf("after a reboot: restarts = %d, want 1 (counters persist)", back.Restarts)
	}
	if ct, _ := c2.Container(ctx, "idle"); ct.State != api.StateStopped || ct.Desired != "stopped" {
		t.Errorf("after a reboot: idle is %s (desired %s), want stopped", ct.State, ct.Desired)
	}
	if err := c2.RemoveContainer(ctx, "hello"); err != nil {
		t.Errorf("RemoveContainer(hello) = %v", err)
	}
	if _, err := os.Stat(dir + "/var/lib/allium/containers/hello"); !os.IsNotExist(err) {
		t.Errorf("after rm, the root is still there: %v", err)
	}
	syscall.Kill(n2.pid, syscall.SIGTERM)
	<-n2.done
}

func waitLog(t *testing.T, c *api.Client, name, want string) {
	t.Helper()
	var lines []string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		lines = nil
		c.Logs(context.Background(), name, api.LogOptions{Tail: -1}, func(l string) error { lines = append(lines, l); return nil })
		if strings.Contains(strings.Join(lines, "\n"), want) {
			return
		}
	}
	t.Errorf("logs of %s = %q, want a line with %q", name, lines, want)
}
