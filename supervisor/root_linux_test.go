package supervisor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"allium/internal/testkit"
	"allium/manifest"
	"allium/supervisor/idmap"
	"allium/supervisor/isolation"
	"allium/supervisor/restart"

	"golang.org/x/sys/unix"
)

// The root tier: real chroots with busybox, real processes, the test
// binary as the shim (TestMain). Waits are for events, with a generous
// deadline that only turns a hang into a failure.

const rootWait = 30 * time.Second

// busyboxRoot builds a container root: a static busybox, its applets,
// and a user app (1000) in groups app and web (2000).
func busyboxRoot(t *testing.T) string {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("root tier needs /bin/busybox (apt-get install busybox-static, or tools/deps.sh): %v", err)
	}
	root := t.TempDir()
	os.Chmod(root, 0o755) // the workload's user walks it
	for _, d := range []string{"bin", "etc", "home/app", "www"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.Chown(filepath.Join(root, "home/app"), 1000, 1000)
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "id", "sleep", "echo", "cat", "httpd", "true"} {
		os.Symlink("busybox", filepath.Join(root, "bin", a))
	}
	writeFile(t, filepath.Join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
	writeFile(t, filepath.Join(root, "etc/group"), "root:x:0:\napp:x:1000:\nweb:x:2000:app\n")
	writeFile(t, filepath.Join(root, "www/index.html"), "hello\n")
	return root
}

// rootHarness is a Supervisor on real processes, recording events.
type rootHarness struct {
	t   *testing.T
	sup *Supervisor

	mu     sync.Mutex
	events []Event
	notify chan struct{} // closed and replaced at each event
}

func newRootHarness(t *testing.T) *rootHarness {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h := &rootHarness{t: t, notify: make(chan struct{})}
	h.sup = New(Options{Exe: exe, Starter: testkit.Starter, Rand: half, OnEvent: h.record, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), rootWait)
		defer cancel()
		for _, st := range h.sup.List() {
			if err := h.sup.Remove(ctx, st.Name); err != nil && st.PID > 0 {
				unix.Kill(-st.PID, unix.SIGKILL) // leave no process behind, even when broken
			}
		}
	})
	return h
}

func (h *rootHarness) record(ev Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, ev)
	h.t.Logf("event: %s %s [%v] %s", ev.Container, ev.Type, ev.State, ev.Message)
	close(h.notify)
	h.notify = make(chan struct{})
}

// waitFor waits until n events of type typ have happened and returns
// them.
func (h *rootHarness) waitFor(typ EventType, n int) []Event {
	h.t.Helper()
	return h.waitMatch(string(typ), n, func(ev Event) bool { return ev.Type == typ })
}

// waitMatch waits until n events match and returns them.
func (h *rootHarness) waitMatch(what string, n int, match func(Event) bool) []Event {
	h.t.Helper()
	deadline := time.After(rootWait)
	for {
		h.mu.Lock()
		var got []Event
		for _, ev := range h.events {
			if match(ev) {
				got = append(got, ev)
			}
		}
		notify := h.notify
		h.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-notify:
		case <-deadline:
			h.t.Fatalf("waited %v for %d %s events; got %d", rootWait, n, what, len(got))
		}
	}
}

func (h *rootHarness) all() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events)
}

// waitLog waits until the log in dir has a line containing each of ss.
func waitLog(t *testing.T, dir string, ss ...string) []string {
	t.Helper()
	deadline := time.Now().Add(rootWait)
	for {
		lines, _ := ReadLogs(dir, 0)
		all := strings.Join(lines, "\n")
		if !slices.ContainsFunc(ss, func(s string) bool { return !strings.Contains(all, s) }) {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %s lacks one of %q after %v: %q", dir, ss, rootWait, lines)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procStatus reads the fields of /proc/PID/status.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return m
}

func (h *rootHarness) add(s Spec) int {
	h.t.Helper()
	if err := h.sup.Add(s, restart.History{}, true); err != nil {
		h.t.Fatal(err)
	}
	return h.waitMatch("start of "+s.Name, 1, func(ev Event) bool {
		return ev.Type == EventStart && ev.Container == s.Name
	})[0].PID
}

// The workload runs chrooted, as the manifest's user, in its own
// session, with no_new_privs, no capabilities, its rlimits, its env and
// workdir; its stdout and stderr land in the log with timestamps.
func TestRootIdentity(t *testing.T) {
	testkit.NeedRoot(t)
	root, logs := busyboxRoot(t), t.TempDir()
	m := &manifest.Manifest{
		Version: 1, Name: "id", User: "app", Workdir: "/home/app", Env: map[string]string{"GREETING": "hi"},
		Command:   []string{"sh", "-c", "id -u; id -G; ulimit -n; echo oops >&2; exec sleep 1000"},
		Resources: manifest.Resources{Rlimits: map[string]uint64{"nofile": 64}},
	}
	spec, err := FromManifest(m, "id", root, logs, isolation.Chroot, idmap.Range{})
	if err != nil {
		t.Fatal(err)
	}
	h := newRootHarness(t)
	pid := h.add(spec)
	lines := waitLog(t, logs, "stderr oops", "stdout 64")
	got := map[string][]string{} // the streams are read apart: no order between them
	for _, l := range lines {
		tm, stream, text := parseLine(t, l)
		if time.Since(tm) > time.Hour || tm.After(time.Now()) {
			t.Errorf("log line %q: timestamp %v is not now", l, tm)
		}
		got[stream] = append(got[stream], text)
	}
	if want := []string{"1000", "1000 2000", "64"}; !slices.Equal(got["stdout"], want) {
		t.Errorf("stdout = %q, want %q", got["stdout"], want)
	}
	if want := []string{"oops"}; !slices.Equal(got["stderr"], want) {
		t.Errorf("stderr = %q, want %q", got["stderr"], want)
	}
	checkIdentity(t, pid, root)
	if err := h.sup.Stop(context.Background(), "id"); err != nil {
		t.Fatal(err)
	}
}

// checkIdentity checks from the node's /proc what TestRootIdentity's
// workload runs as.
func checkIdentity(t *testing.T, pid int, root string) {
	t.Helper()
	st := procStatus(t, pid)
	for k, want := range map[string]string{
		"NoNewPrivs": "1", "CapBnd": "0000000000000000", "CapEff": "0000000000000000",
		"CapInh": "0000000000000000", "CapAmb": "0000000000000000",
		"Uid": "1000 1000 1000 1000", "Gid": "1000 1000 1000 1000", "Groups": "2000",
		"SigBlk": "0000000000000000", "SigIgn": "0000000000000000", // nothing of PID 1's signal handling
	} {
		if st[k] != want {
			t.Errorf("/proc/%d/status %s = %q, want %q", pid, k, st[k], want)
		}
	}
	if r, _ := os.Readlink(fmt.Sprintf("/proc/%d/root", pid)); r != root {
		t.Errorf("/proc/%d/root = %q, want %q (chrooted)", pid, r, root)
	}
	if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); cwd != filepath.Join(root, "home/app") {
		t.Errorf("/proc/%d/cwd = %q, want the workdir", pid, cwd)
	}
	if sid, _ := unix.Getsid(pid); sid != pid {
		t.Errorf("session of %d = %d, want its own", pid, sid)
	}
	if pgid, _ := unix.Getpgid(pid); pgid != pid {
		t.Errorf("process group of %d = %d, want its own", pid, pgid)
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	env := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	for _, want := range []string{"GREETING=hi", "HOME=/home/app", "PATH=" + DefaultPath} {
		if !slices.Contains(env, want) {
			t.Errorf("environ = %q, want %s in it", env, want)
		}
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "ALLIUM_") {
			t.Errorf("environ has the shim's %.40s...", kv)
		}
	}
}

// A root workload keeps only rootCaps in its bounding set, less CAP_KILL
// and CAP_SETUID at the chroot rung, where it shares the node's pid
// namespace (issue 10: a root container's kill -TERM 1 powered the node
// off). Neither rung has CAP_SYS_BOOT: reboot(2) is refused.
func TestRootCapabilitiesOfRoot(t *testing.T) {
	testkit.NeedRoot(t)
	root := busyboxRoot(t)
	h := newRootHarness(t)
	pid := h.add(Spec{Name: "r", Root: root, Command: []string{"sleep", "1000"}, Env: []string{"PATH=/bin"}})
	h.waitFor(EventReady, 1) // the exec: the shim has done its work
	var want uint64
	for _, c := range rootCaps {
		if c != unix.CAP_KILL && c != unix.CAP_SETUID {
			want |= 1 << c
		}
	}
	st := procStatus(t, pid)
	if got := st["CapBnd"]; got != fmt.Sprintf("%016x", want) {
		t.Errorf("chroot rung: CapBnd = %s, want %016x (rootCaps without KILL and SETUID)", got, want)
	}
	if st["NoNewPrivs"] != "1" || st["Uid"] != "0 0 0 0" {
		t.Errorf("NoNewPrivs %s Uid %s, want 1 and root", st["NoNewPrivs"], st["Uid"])
	}
	if want&(1<<unix.CAP_SYS_BOOT) != 0 {
		t.Errorf("rootCaps has CAP_SYS_BOOT")
	}
}

// keepCap keeps CAP_KILL and CAP_SETUID for root from the namespaces
// rung up, drops them at the chroot rung, and keeps nothing for others.
func TestKeepCap(t *testing.T) {
	for _, tc := range []struct {
		uid  uint32
		rung isolation.Rung
		c    uintptr
		want bool
	}{
		{0, isolation.Chroot, unix.CAP_KILL, false},
		{0, isolation.Chroot, unix.CAP_SETUID, false},
		{0, isolation.Chroot, unix.CAP_SETGID, true},
		{0, isolation.Chroot, unix.CAP_SYS_BOOT, false},
		{0, isolation.Namespaces, unix.CAP_KILL, true},
		{0, isolation.Namespaces, unix.CAP_SETUID, true},
		{0, isolation.Namespaces, unix.CAP_SYS_BOOT, false},
		{1000, isolation.Namespaces, unix.CAP_KILL, false},
	} {
		if got := keepCap(&shimConfig{UID: tc.uid, Rung: tc.rung}, tc.c); got != tc.want {
			t.Errorf("keepCap(uid %d, %s, cap %d) = %v, want %v", tc.uid, tc.rung, tc.c, got, tc.want)
		}
	}
}

func TestRootRestartAfterKill(t *testing.T) {
	testkit.NeedRoot(t)
	root := busyboxRoot(t)
	h := newRootHarness(t)
	pid := h.add(Spec{Name: "k", Root: root, Command: []string{"sleep", "1000"}, Policy: restart.Policy{Delay: 10 * time.Millisecond}})
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	starts := h.waitFor(EventStart, 2)
	st, _ := h.sup.Status("k")
	if starts[1].PID == pid || st.Restarts != 1 || st.LastExit == nil || st.LastExit.Signal != "SIGKILL" {
		t.Errorf("after kill: pid %d (was %d), restarts %d, last exit %v; want a new pid, 1 restart, SIGKILL", starts[1].PID, pid, st.Restarts, st.LastExit)
	}
}

func TestRootBackoffGrowth(t *testing.T) {
	testkit.NeedRoot(t)
	root := busyboxRoot(t)
	h := newRootHarness(t)
	ms := time.Millisecond
	h.add(Spec{Name: "b", Root: root, Command: []string{"sh", "-c", "exit 1"},
		Policy: restart.Policy{Delay: 20 * ms, MaxDelay: 160 * ms, Burst: 100, Window: time.Minute}})
	var got []time.Duration
	for _, ev := range h.waitFor(EventRestart, 6)[:6] {
		got = append(got, ev.Delay)
	}
	if want := []time.Duration{20 * ms, 40 * ms, 80 * ms, 160 * ms, 160 * ms, 160 * ms}; !slices.Equal(got, want) {
		t.Errorf("scheduled delays = %v, want %v", got, want)
	}
}

func TestRootCrashloop(t *testing.T) {
	testkit.NeedRoot(t)
	root := busyboxRoot(t)
	h := newRootHarness(t)
	h.add(Spec{Name: "c", Root: root, Command: []string{"sh", "-c", "exit 3"},
		Policy: restart.Policy{Delay: 10 * time.Millisecond, Burst: 3, Window: time.Minute, CrashloopRetry: 300 * time.Millisecond}})
	loops := h.waitFor(EventCrashloop, 2) // entry, then the retry failed too
	if loops[0].Delay != 300*time.Millisecond || loops[0].State != Crashloop {
		t.Errorf("crashloop event = %+v, want a 300ms retry in state crashloop", loops[0])
	}
	var seq []EventType // the story, without exits and execs
	for _, ev := range h.all() {
		if ev.Type != EventExit && ev.Type != EventReady {
			seq = append(seq, ev.Type)
		}
	}
	want := []EventType{EventStart, EventRestart, EventStart, EventRestart, EventStart, EventCrashloop, EventStart, EventCrashloop}
	if len(seq) < len(want) || !slices.Equal(seq[:len(want)], want) {
		t.Errorf("events = %v, want %v", seq, want)
	}
	before := len(h.waitFor(EventRestart, 2))
	h.sup.Start("c") // clears the crashloop: the next exit backs off from the start
	restarts := h.waitFor(EventRestart, before+1)
	if last := restarts[before]; last.Delay != 10*time.Millisecond || last.History.Crashloop {
		t.Errorf("after Start: %+v, want a 10ms backoff, crashloop cleared", last)
	}
}

func TestRootExit125StaysDown(t *testing.T) {
	testkit.NeedRoot(t)
	root := busyboxRoot(t)
	h := newRootHarness(t)
	h.add(Spec{Name: "e", Root: root, Command: []string{"sh", "-c", "exit 125"}, Policy: restart.Policy{Delay: time.Millisecond}})
	ex := h.waitFor(EventExit, 1)[0]
	if ex.State != Exited || ex.Exit.Code != 125 {
		t.Errorf("exit event = %+v, want exit 125 leading to exited", ex)
	}
	if st, _ := h.sup.Status("e"); st.State != Exited || !st.NextRestart.IsZero() {
		t.Errorf("status = %+v, want exited with nothing scheduled", st)
	}
}

// A workload that ignores SIGTERM, and its child, die by SIGKILL of the
// process group once the stop timeout passes.
func TestRootStopEscalates(t *testing.T) {
	testkit.NeedRoot(t)
	root, logs := busyboxRoot(t), t.TempDir()
	h := newRootHarness(t)
	h.add(Spec{Name: "s", Root: root, LogDir: logs, StopTimeout: 300 * time.Millisecond,
		Command: []string{"sh", "-c", `trap "" TERM; sleep 1000 & echo child $!; wait; echo not reached`}})
	var child int
	for _, l := range waitLog(t, logs, "child ") {
		if _, text, ok := strings.Cut(l, "stdout child "); ok {
			child, _ = strconv.Atoi(text)
		}
	}
	if child == 0 {
		t.Fatal("no child pid in the log")
	}
	ctx, cancel := context.WithTimeout(context.Background(), rootWait)
	defer cancel()
	if err := h.sup.Stop(ctx, "s"); err != nil {
		t.Fatalf("Stop of a workload ignoring SIGTERM = %v, want it stopped by SIGKILL", err)
	}
	stops := h.waitFor(EventStop, 2)
	if !strings.Contains(stops[1].Message, "SIGKILL") {
		t.Errorf("stop events = %q, %q; want the escalation to SIGKILL", stops[0].Message, stops[1].Message)
	}
	if ex := h.waitFor(EventExit, 1)[0]; ex.Exit.Signal != "SIGKILL" || ex.State != Stopped {
		t.Errorf("exit = %+v, want killed by SIGKILL, stopped", ex)
	}
	waitDead(t, child)
}

// waitDead waits until pid has died (gone, or a zombie nobody reaped).
func waitDead(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(rootWait)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		if _, after, _ := strings.Cut(string(b), ") "); strings.HasPrefix(after, "Z") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d still alive %v after the stop: %s", pid, rootWait, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Failures before exec are reported, logged, and not retried.
func TestRootSetupFailure(t *testing.T) {
	testkit.NeedRoot(t)
	root, logs := busyboxRoot(t), t.TempDir()
	h := newRootHarness(t)
	tests := []struct {
		spec     Spec
		code     int
		contains string
	}{
		{Spec{Name: "nf", Command: []string{"nonexistent"}}, ExitNotFound, `command "nonexistent" not found`},
		{Spec{Name: "abs", Command: []string{"/bin/nonexistent"}}, ExitNotFound, "exec /bin/nonexistent"},
		{Spec{Name: "wd", Command: []string{"true"}, Workdir: "/nope"}, ExitShimRoot, "chdir to workdir /nope"},
		{Spec{Name: "x", Command: []string{"/etc/passwd"}}, ExitCannotExec, "permission denied"},
	}
	for i, tt := range tests {
		tt.spec.Root, tt.spec.LogDir = root, filepath.Join(logs, tt.spec.Name)
		if err := h.sup.Add(tt.spec, restart.History{}, true); err != nil {
			t.Fatal(err)
		}
		ev := h.waitFor(EventError, i+1)[i]
		st, _ := h.sup.Status(tt.spec.Name)
		if st.State != Failed || st.LastExit == nil || st.LastExit.Code != tt.code || !strings.Contains(st.Error, tt.contains) {
			t.Errorf("%s: status %v, exit %v, error %q; want failed, exit %d, error with %q", tt.spec.Name, st.State, st.LastExit, st.Error, tt.code, tt.contains)
		}
		if ev.Container != tt.spec.Name {
			t.Errorf("error event for %s, want %s", ev.Container, tt.spec.Name)
		}
		waitLog(t, tt.spec.LogDir, "stderr allium shim: ")
	}
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestRootReadiness(t *testing.T) {
	testkit.NeedRoot(t)
	root := busyboxRoot(t)
	h := newRootHarness(t)
	port := freePort(t)
	h.add(Spec{Name: "web", Root: root, UID: 1000, GID: 1000,
		Command: []string{"httpd", "-f", "-p", fmt.Sprintf("127.0.0.1:%d", port), "-h", "/www"},
		Ready:   HTTPProbe{URL: fmt.Sprintf("http://127.0.0.1:%d/", port)}})
	h.add(Spec{Name: "fd", Root: root, ReadyFD: 3, Command: []string{"sh", "-c", "sleep 0.2; echo >&3; exec sleep 1000"}})
	ready := h.waitFor(EventReady, 2)
	for _, ev := range ready {
		if ev.State != Running {
			t.Errorf("ready event %+v, want state running", ev)
		}
	}
}
