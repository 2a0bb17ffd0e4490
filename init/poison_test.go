package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"allium/api"
	"allium/internal/testbin"
	"allium/internal/testkit"
	"allium/rootfs"
	"allium/supervisor"
)

// Issue 10: a container running as root whose command was kill -TERM 1
// powered the node off 3 s after its start, and kill -KILL -1 killed
// every other container and tor. Here init is PID 1 of an OS container
// (a pid namespace of the test's own, so kill -1 reaches nothing of the
// machine's), its containers at their natural rung and forced to the
// chroot rung (node.json's isolation); a root container tries every way
// to stop the node (PoisonScript: signals to PID 1 and to -1, reboot -f,
// halt, poweroff, the node's unix socket), restarting after each try,
// beside a neighbour running as another user. The node, its real uid
// and the neighbour are as before.
func TestPoisonInOSContainer(t *testing.T) {
	requireRoot(t)
	bin := testbin.Path(t, "init")
	poison := testkit.BuildPoison(t)
	for _, rung := range []string{"", "chroot"} {
		name := rung
		if name == "" {
			name = "natural"
		}
		t.Run(name, func(t *testing.T) { poisonAt(t, bin, poison, rung) })
	}
}

func poisonAt(t *testing.T, bin, poison, rung string) {
	dir, port, client, node := newChroot(t, bin)
	if rung != "" {
		cfg := fmt.Sprintf(`{"name":"ct1","port":%d,"isolation":%q}`, port, rung)
		if err := os.WriteFile(filepath.Join(dir, rootfs.NodeConfigFile), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := startContainerNode(t, dir, port, client, node)
	ctx := context.Background()
	c.waitUp()
	if got := procIDs(t, c.pid, "Uid"); got != fmt.Sprintf("%d 0 %d 0", supervisor.InitUID, supervisor.InitUID) {
		t.Errorf("init's Uid line = %q, want real and saved %d, effective and fs 0", got, supervisor.InitUID)
	}
	poisonImage := pushBusybox(t, c, `{"version": 1, "name": "poison", "command": ["/bin/busybox", "sh", "-c", `+
		fmt.Sprintf("%q", testkit.PoisonScript)+`], "restart": {"delay": "100ms"}}`, map[string]string{"poison": poison})
	neighbourImage := pushBusybox(t, c, `{"version": 1, "name": "neighbour", "user": "1000", "command": ["/bin/busybox", "sleep", "1000"]}`, nil)
	nb := startAndWait(t, c, "neighbour", neighbourImage)
	if rung != "" && nb.Isolation != rung {
		t.Errorf("neighbour runs at %q, want %q (node.json's isolation)", nb.Isolation, rung)
	}
	if _, err := c.unix().PutContainer(ctx, "poison", api.ContainerRequest{Image: poisonImage}); err != nil {
		t.Fatalf("put poison: %v", err)
	}
	// Three runs of the poison: it exits after each try and restarts.
	var logs string
	for deadline := time.Now().Add(60 * time.Second); strings.Count(logs, "poisoned") < 3 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		logs = containerLogs(t, c, "poison")
	}
	if n := strings.Count(logs, "poisoned"); n < 3 {
		t.Fatalf("the poison ran to its end %d times, want 3; its log:\n%s", n, logs)
	}
	if strings.Contains(logs, "REACHED") || !strings.Contains(logs, "socket /run/allium.sock: unreachable") {
		t.Errorf("the poison reached a unix socket of the node, or never tried; its log:\n%s", logs)
	}
	if _, err := c.unix().Node(ctx); err != nil {
		t.Fatalf("the node stopped answering after the poison: %v", err)
	}
	select {
	case err := <-c.done:
		t.Fatalf("init exited after the poison: %v", err)
	default:
	}
	if strings.Contains(c.logs.String(), "shutdown: begin") {
		t.Errorf("the poison started a shutdown:\n%s", c.logs)
	}
	after, err := c.unix().Container(ctx, "neighbour")
	if err != nil || after.PID != nb.PID || after.Restarts != 0 || after.State != api.StateRunning {
		t.Errorf("neighbour after the poison = %+v, %v; want running, pid %d, no restart", after, err, nb.PID)
	}
	t.Logf("poison at %s: %d runs; its last log lines:\n%s", nb.Isolation, strings.Count(logs, "poisoned"), tailLines(logs, 12))
	syscall.Kill(c.pid, syscall.SIGTERM) // root on the node, with CAP_KILL, still may
	select {
	case <-c.done:
	case <-time.After(60 * time.Second):
		t.Errorf("init did not power off within 60 s of SIGTERM from root on the node")
	}
}

// procIDs is the Uid or Gid line of pid's status.
func procIDs(t *testing.T, pid int, key string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}

// pushBusybox uploads an image of busybox (with its applets' links in
// /bin), files at the root, an /etc/passwd with root and app (1000),
// and manifest; it returns the digest.
func pushBusybox(t *testing.T, c *containerNode, manifest string, files map[string]string) string {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h tar.Header, body []byte) {
		h.Size = int64(len(body))
		if h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeDir {
			h.Size = 0
		}
		tw.WriteHeader(&h)
		tw.Write(body)
	}
	add(tar.Header{Name: "manifest.json", Mode: 0o644}, []byte(manifest))
	for _, d := range []string{"rootfs/", "rootfs/bin/", "rootfs/etc/", "rootfs/run/"} {
		add(tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	}
	add(tar.Header{Name: "rootfs/bin/busybox", Mode: 0o755}, bb)
	for _, a := range []string{"sh", "kill", "reboot", "halt", "poweroff", "sleep", "echo"} {
		add(tar.Header{Name: "rootfs/bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}, nil)
	}
	add(tar.Header{Name: "rootfs/etc/passwd", Mode: 0o644}, []byte("root:x:0:0:root:/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n"))
	for name, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		add(tar.Header{Name: "rootfs/" + name, Mode: 0o755}, b)
	}
	tw.Close()
	sum := sha256.Sum256(buf.Bytes())
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if _, err := c.unix().Upload(context.Background(), digest, bytes.NewReader(buf.Bytes()), int64(buf.Len()), api.UploadOptions{}); err != nil {
		t.Fatalf("upload: %v", err)
	}
	return digest
}

func startAndWait(t *testing.T, c *containerNode, name, digest string) api.Container {
	t.Helper()
	ctx := context.Background()
	got, err := c.unix().PutContainer(ctx, name, api.ContainerRequest{Image: digest})
	for deadline := time.Now().Add(30 * time.Second); err == nil && (got.State != api.StateRunning || got.PID == 0) && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		got, err = c.unix().Container(ctx, name)
	}
	if err != nil || got.State != api.StateRunning {
		t.Fatalf("container %s = %+v, %v; want running", name, got, err)
	}
	return got
}

func containerLogs(t *testing.T, c *containerNode, name string) string {
	var b strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.unix().Logs(ctx, name, api.LogOptions{}, func(l string) error { b.WriteString(l + "\n"); return nil })
	return b.String()
}

func tailLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(ls[max(0, len(ls)-n):], "\n")
}
