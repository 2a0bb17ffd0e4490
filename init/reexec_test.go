package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"allium/api"
	"allium/internal/testbin"
)

// The root tier: PID 1 re-executes itself in place as a new init, in
// OS-container mode, with a container running that writes numbered
// lines: the same process goes on as the new version, the container
// keeps its pid, no line is lost or doubled, and the new init
// supervises it (a kill is restarted).
func TestReexecInOSContainer(t *testing.T) {
	requireRoot(t)
	bin := testbin.Path(t, "init")
	init2 := buildInit(t, "vTEST2")
	dir, port, client, node := newChroot(t, bin)
	c := startContainerNode(t, dir, port, client, node)
	before := c.waitUp()
	ctx := context.Background()
	u := c.unix()

	data, digest := busyboxImage(t, "counter", `i=0; while true; do i=$((i+1)); echo "n $i"; busybox usleep 2000; done`)
	if _, err := u.Upload(ctx, digest, bytes.NewReader(data), int64(len(data)), api.UploadOptions{}); err != nil {
		t.Fatalf("Upload(counter) = %v", err)
	}
	if _, err := u.PutContainer(ctx, "counter", api.ContainerRequest{Image: digest}); err != nil {
		t.Fatalf("PutContainer(counter) = %v", err)
	}
	first := waitContainer(t, u, "counter", func(ct api.Container) bool { return ct.State == api.StateRunning && ct.PID > 0 })
	waitLog(t, u, "counter", "n 100")

	// Send the new init, checked and staged.
	b, err := os.ReadFile(init2)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	idigest := "sha256:" + hex.EncodeToString(sum[:])
	in, err := u.UploadInit(ctx, idigest, bytes.NewReader(b), int64(len(b)), api.UploadOptions{})
	if err != nil || in.Version != "vTEST2" {
		t.Fatalf("UploadInit() = %+v, %v; want vTEST2 staged", in, err)
	}

	// An execve that fails (the staged init made not executable) after
	// everything was frozen is undone: the node goes on as it was.
	staged := fmt.Sprintf("/proc/%d/root/var/lib/allium/inits/%s", c.pid, strings.TrimPrefix(idigest, "sha256:"))
	if err := os.Chmod(staged, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := u.SwitchInit(ctx, idigest); err != nil {
		t.Fatalf("SwitchInit(not executable) = %v; want 202, then a failed execve", err)
	}
	var failed api.Node
	for deadline := time.Now().Add(60 * time.Second); failed.Update == nil || !strings.Contains(failed.Update.Last, "failed"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the failed switch was never reported; last %+v", failed)
		}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		failed, _ = u.Node(qctx)
		cancel()
	}
	if failed.Version != before.Version || !strings.Contains(failed.Update.Last, "execve") {
		t.Errorf("after a failed execve: version %s, last %q; want %s and the execve's error", failed.Version, failed.Update.Last, before.Version)
	}
	if ct, err := u.Container(ctx, "counter"); err != nil || ct.PID != first.PID || ct.State != api.StateRunning {
		t.Errorf("counter after a failed switch = %+v, %v; want running, pid %d", ct, err, first.PID)
	}
	if _, err := c.tcp(client).Node(ctx); err != nil {
		t.Errorf("GET /v1/node over TCP after a failed switch: %v", err)
	}
	waitLog(t, u, "counter", fmt.Sprintf("n %d", countUp(t, logsOf(t, u, "counter"))+100))
	if err := os.Chmod(staged, 0o755); err != nil {
		t.Fatal(err)
	}

	// A client asks over TCP all along: it must get answers again.
	stop := make(chan struct{})
	var mu sync.Mutex
	var failures int
	var lastErr error
	var polled sync.WaitGroup
	polled.Add(1)
	go func() {
		defer polled.Done()
		tc := c.tcp(client)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := tc.Node(qctx)
			cancel()
			if err != nil {
				mu.Lock()
				failures, lastErr = failures+1, err
				mu.Unlock()
			}
		}
	}()

	a, err := u.SwitchInit(ctx, idigest)
	if err != nil {
		t.Fatalf("SwitchInit() = %v", err)
	}
	t.Logf("switch: %s", a.Status)
	var after api.Node
	for deadline := time.Now().Add(60 * time.Second); after.Version != "vTEST2"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the node never answered as vTEST2; last %+v", after)
		}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		after, _ = u.Node(qctx)
		cancel()
	}
	select {
	case <-c.exited:
		t.Fatal("PID 1 exited during the switch")
	default:
	}
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", c.pid)); !strings.Contains(exe, "/inits/") {
		t.Errorf("PID 1 (pid %d on the host) runs %q, want the staged init under inits/", c.pid, exe)
	}
	if after.BootCount != before.BootCount || after.Update == nil || after.Update.Previous != before.Version ||
		!strings.Contains(after.Update.Last, "took over from init "+before.Version) {
		t.Errorf("GET /v1/node after the switch: boot %d, update %+v; want boot %d, taken over from %s", after.BootCount, after.Update, before.BootCount, before.Version)
	}
	if after.UptimeSeconds < before.UptimeSeconds {
		t.Errorf("uptime went back across the switch: %v, then %v", before.UptimeSeconds, after.UptimeSeconds)
	}
	c.waitLog(`update: took over from init`)

	ct, err := u.Container(ctx, "counter")
	if err != nil || ct.PID != first.PID || ct.State != api.StateRunning || ct.Restarts != first.Restarts {
		t.Errorf("counter after the switch = %+v, %v; want running, pid %d, restarts %d", ct, err, first.PID, first.Restarts)
	}

	// The lines go on, each number once and in order.
	lines := logsOf(t, u, "counter")
	last := countUp(t, lines)
	waitLog(t, u, "counter", fmt.Sprintf("n %d", last+200))
	countUp(t, logsOf(t, u, "counter"))

	close(stop)
	polled.Wait()
	if _, err := c.tcp(client).Node(ctx); err != nil {
		t.Errorf("GET /v1/node over TCP after the switch: %v", err)
	}
	mu.Lock()
	t.Logf("TCP polls that failed during the switch: %d (last: %v)", failures, lastErr)
	mu.Unlock()

	// The new init supervises the container: a kill is restarted.
	if _, err := u.SignalContainer(ctx, "counter", "KILL"); err != nil {
		t.Fatalf("SignalContainer(KILL) = %v", err)
	}
	again := waitContainer(t, u, "counter", func(ct api.Container) bool {
		return ct.State == api.StateRunning && ct.PID != first.PID && ct.Restarts == first.Restarts+1
	})
	if again.LastExit == nil || again.LastExit.Signal != "SIGKILL" {
		t.Errorf("after the kill: last exit %+v, want SIGKILL", again.LastExit)
	}

	// It still shuts down in order, unmounting what the first init mounted.
	syscall.Kill(c.pid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("init did not exit within 60 s of SIGTERM")
	}
	checkOrder(t, c.logs.String(), "update: switching", "update: exec", "execve", "update: switching", "update: exec", "update: took over from init",
		"shutdown: stopping containers", "shutdown: closing state", "shutdown: unmounting")
}

// buildInit builds this init with main.version set to v, static.
func buildInit(t *testing.T, v string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "init")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags", "-X main.version="+v, "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build init %s: %v\n%s", v, err, b)
	}
	return out
}

// logsOf is every line of name's log.
func logsOf(t *testing.T, c *api.Client, name string) []string {
	t.Helper()
	var lines []string
	if err := c.Logs(context.Background(), name, api.LogOptions{Tail: -1}, func(l string) error { lines = append(lines, l); return nil }); err != nil {
		t.Fatalf("logs of %s: %v", name, err)
	}
	return lines
}

// countUp checks that lines are "n 1", "n 2", ... with none missing or
// doubled, and returns the last number.
func countUp(t *testing.T, lines []string) int {
	t.Helper()
	want := 1
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 2 || f[len(f)-2] != "n" {
			continue
		}
		n, err := strconv.Atoi(f[len(f)-1])
		if err != nil || n != want {
			t.Fatalf("log line %q: want n %d (every number once, in order)", l, want)
		}
		want++
	}
	if want == 1 {
		t.Fatalf("no numbered line in the log: %q", lines)
	}
	return want - 1
}
