package main

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mholt/archives"

	"allium/api"
)

// started is a fleet whose web1 runs foo from foo.txz.
func started(t *testing.T) (*fleet, string) {
	t.Helper()
	f := newFleet(t)
	path, digest := writeArchive(t, t.TempDir(), "foo.txz", archives.Xz{}, imageEntries(goodManifest, nil))
	if code, _, _ := f.cloud(t, "start", "web1", path); code != exitOK {
		t.Fatalf("cloud start web1 foo.txz: exit %d", code)
	}
	return f, digest
}

func TestStopByNameAndByFile(t *testing.T) {
	f, _ := started(t)
	for _, arg := range []string{"foo", "foo.txz", "bar/foo.tar.zst"} {
		code, out, _ := f.cloud(t, "stop", "web1", arg)
		if code != exitOK || out != "stopped foo\n" {
			t.Errorf("cloud stop web1 %s: exit %d, output %q; want 0 and \"stopped foo\"", arg, code, out)
		}
	}
	if got := f.backend.actions[1:]; !slices.Equal(got, []string{"stop foo", "stop foo", "stop foo"}) {
		t.Errorf("the node was asked %q, want three stops of foo", got)
	}
	if c := f.backend.containers["foo"]; c.State != api.StateStopped || c.Desired != "stopped" {
		t.Errorf("after cloud stop, foo is %s (desired %s), want stopped", c.State, c.Desired)
	}
}

func TestStopUnknown(t *testing.T) {
	f := newFleet(t)
	code, _, errOut := f.cloud(t, "stop", "web1", "nosuch")
	if code != exitFailure {
		t.Errorf("cloud stop web1 nosuch: exit %d, want %d", code, exitFailure)
	}
	wantContains(t, "cloud stop web1 nosuch", errOut, `web1 answered: no container "nosuch" (HTTP 404, not_found)`)
}

func TestRestartAndRm(t *testing.T) {
	f, _ := started(t)
	code, out, _ := f.cloud(t, "restart", "web1", "foo")
	if code != exitOK || !strings.Contains(out, "foo is running (pid 4242") {
		t.Errorf("cloud restart web1 foo: exit %d, output %q; want it running", code, out)
	}
	code, out, _ = f.cloud(t, "rm", "web1", "foo.txz")
	if code != exitOK || out != "removed foo (its volumes are kept)\n" {
		t.Errorf("cloud rm web1 foo.txz: exit %d, output %q", code, out)
	}
	if _, ok := f.backend.containers["foo"]; ok {
		t.Errorf("foo is still on the node after cloud rm")
	}
}

// cloud restart reported "did not start: exit 126" for a container
// cloud ps showed running (issue 10): the node answers a restart before
// its supervisor acts, and the first GET showed the run before's exit.
func TestRestartIgnoresTheRunBefore(t *testing.T) {
	f, _ := started(t)
	f.backend.mu.Lock()
	c := f.backend.containers["foo"]
	c.State, c.PID, c.Started = api.StateBackoff, 0, time.Time{}
	c.LastExit = &api.Exit{Code: 126, Time: time.Now().Add(-time.Minute)}
	f.backend.containers["foo"] = c
	f.backend.later = true
	// The GET before the restart, then one that still shows the old
	// exit, then the new run.
	f.backend.scripts["foo"] = []string{"", "", api.StateRunning}
	f.backend.mu.Unlock()
	code, out, errOut := f.cloud(t, "restart", "web1", "foo")
	if code != exitOK || !strings.Contains(out, "foo is running (pid 4242") || strings.Contains(errOut, "126") {
		t.Errorf("cloud restart web1 foo: exit %d, output %q, %q; want it running, no word of exit 126", code, out, errOut)
	}
	// A new failure after the restart is reported.
	f.backend.mu.Lock()
	f.backend.scripts["foo"] = []string{"", api.StateBackoff}
	f.backend.mu.Unlock()
	code, _, errOut = f.cloud(t, "restart", "web1", "foo")
	if code != exitFailure || !strings.Contains(errOut, "foo did not start: exited with code 3") {
		t.Errorf("cloud restart web1 foo of a failing run: exit %d, stderr %q; want 1 and its exit", code, errOut)
	}
}

func TestKill(t *testing.T) {
	f, _ := started(t)
	code, out, _ := f.cloud(t, "kill", "web1", "foo", "--signal", "TERM")
	if code != exitOK || !strings.Contains(out, "sent TERM to foo") {
		t.Errorf("cloud kill web1 foo --signal TERM: exit %d, output %q", code, out)
	}
	if got := f.backend.actions[len(f.backend.actions)-1]; got != "kill TERM foo" {
		t.Errorf("the node did %q, want kill TERM foo", got)
	}
}

func TestPs(t *testing.T) {
	f, digest := started(t)
	f.backend.containers["bar"] = api.Container{
		Name: "bar", Image: digest, ImageName: "foo", State: api.StateCrashloop, Restarts: 12,
		LastExit: &api.Exit{Signal: "SIGSEGV", Time: time.Now().Add(-3 * time.Minute)}, Error: "segfaults at start",
	}
	f.backend.containers["hog"] = api.Container{Name: "hog", Image: digest, ImageName: "foo", State: api.StateBackoff,
		Restarts: 1, LastExit: &api.Exit{Code: 137, Signal: "SIGKILL", OOM: true, Time: time.Now().Add(-time.Minute)}}
	code, out, _ := f.cloud(t, "ps", "web1")
	if code != exitOK {
		t.Fatalf("cloud ps web1: exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 {
		t.Fatalf("cloud ps web1 = %q, want a header, bar, foo, hog and bar's error", out)
	}
	for i, want := range [][]string{
		{"NAME", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT", "ISOLATION", "IMAGE"},
		{"bar", "crashloop", " - ", "12", "SIGSEGV, 3m ago", " - ", "foo@" + shortDigest(digest)},
		{"foo", "running", "4242", "1m30s", " 0 ", " - ", "chroot", "foo@" + shortDigest(digest)},
		{"hog", "backoff", " 1 ", "oom, 1m ago"},
		{"bar: segfaults at start"},
	} {
		wantContains(t, "cloud ps line "+lines[i], lines[i], want...)
	}
}

func TestPsJSON(t *testing.T) {
	f, _ := started(t)
	_, out, _ := f.cloud(t, "ps", "web1", "--json")
	var cs []map[string]any
	if err := json.Unmarshal([]byte(out), &cs); err != nil || len(cs) != 1 || cs[0]["name"] != "foo" || cs[0]["state"] != "running" {
		t.Errorf("cloud ps --json = %q, want the node's JSON list with foo running", out)
	}
}

func TestPsWide(t *testing.T) {
	f, digest := started(t)
	f.backend.containers["bar"] = api.Container{Name: "bar", Image: digest, ImageName: "foo", State: api.StateStopped}
	c := f.backend.containers["foo"]
	c.Address, c.IDs = "10.7.0.2", "1048576-1114111"
	f.backend.containers["foo"] = c
	f.backend.stats = map[string]api.ContainerStats{"foo": {Cgroup: true, CPUSeconds: 1.5, Memory: 3 << 20,
		MemoryPeak: 5 << 20, Pids: 4, IORead: 12 << 20, IOWrite: 1 << 20, OOMKills: 1}}
	code, out, errOut := f.cloud(t, "ps", "-w", "web1")
	if code != exitOK {
		t.Fatalf("cloud ps -w web1: exit %d, %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("cloud ps -w web1 = %q, want a header, bar and foo", out)
	}
	for i, want := range [][]string{
		{"NAME", "STATE", "ISOLATION", "UIDS", "ADDRESS", "CPU", "MEMORY", "PEAK", "PIDS", "READ", "WRITTEN", "OOM KILLS", "IMAGE"},
		{"bar", "stopped", "foo@" + shortDigest(digest)},
		{"foo", "running", "chroot", "1048576-1114111", "10.7.0.2", "1.50s", "3.0 MiB", "5.0 MiB", " 4 ", "12 MiB", "1.0 MiB", " 1 ", "foo@"},
	} {
		wantContains(t, "cloud ps -w line "+lines[i], lines[i], want...)
	}
	// bar has no cgroup, no range and no address: ISOLATION, UIDS,
	// ADDRESS and the seven stats columns are "-".
	if f := strings.Fields(lines[1]); len(f) != 17 || strings.Join(f[6:16], " ") != "- - - - - - - - - -" {
		t.Errorf("cloud ps -w line %q: want ISOLATION, UIDS, ADDRESS and the stats columns \"-\"", lines[1])
	}
	// The stats columns sit under their headers: statsTable's cells.
	if h, l := lines[0], lines[2]; strings.Index(h, "CPU") != strings.Index(l, "1.50s") {
		t.Errorf("cloud ps -w: CPU at column %d of the header, 1.50s at %d, want the same", strings.Index(h, "CPU"), strings.Index(l, "1.50s"))
	}
}

func TestPsWideJSON(t *testing.T) {
	f, _ := started(t)
	f.backend.stats = map[string]api.ContainerStats{"foo": {Cgroup: true, Pids: 4}}
	_, out, _ := f.cloud(t, "ps", "--wide", "web1", "--json")
	var rows []struct {
		Name  string              `json:"name"`
		State string              `json:"state"`
		Stats *api.ContainerStats `json:"stats"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 || rows[0].Name != "foo" ||
		rows[0].State != "running" || rows[0].Stats == nil || rows[0].Stats.Pids != 4 {
		t.Errorf("cloud ps --wide --json = %q, want foo running with its stats (4 pids)", out)
	}
}

// A node that does not answer one container's stats fails ps -w within
// --timeout, naming the timeout, rather than hanging.
func TestPsWideTimeout(t *testing.T) {
	f, _ := started(t)
	f.backend.statsHang = "foo"
	begin := time.Now()
	code, _, errOut := f.cloud(t, "--timeout", "200ms", "ps", "-w", "web1")
	if code != exitFailure || !strings.Contains(errOut, "--timeout") {
		t.Errorf("cloud ps -w with a stats request unanswered = exit %d, %q; want 1 naming --timeout", code, errOut)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("cloud --timeout 200ms ps -w took %v", d)
	}
}

func TestPsEmpty(t *testing.T) {
	f := newFleet(t)
	code, out, errOut := f.cloud(t, "ps", "web1")
	if code != exitOK || out != "" || !strings.Contains(errOut, "no containers on web1") {
		t.Errorf("cloud ps on an empty node: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestImagesAndRmi(t *testing.T) {
	f, digest := started(t)
	code, out, _ := f.cloud(t, "images", "web1")
	if code != exitOK {
		t.Fatalf("cloud images web1: exit %d", code)
	}
	wantContains(t, "cloud images web1", out, "DIGEST", "USED BY", shortDigest(digest), "  foo  ", " B ", "1h ago")
	_, out, _ = f.cloud(t, "images", "web1", "--json")
	if !strings.Contains(out, `"digest": "`+digest+`"`) {
		t.Errorf("cloud images --json = %q, want the digest", out)
	}
	code, _, errOut := f.cloud(t, "rmi", "web1", "foo")
	if code != exitFailure {
		t.Errorf("cloud rmi of an image in use: exit %d, want %d", code, exitFailure)
	}
	wantContains(t, "cloud rmi of an image in use", errOut, "is used by foo (HTTP 409, conflict)", "cloud rm web1 NAME")
	f.cloud(t, "rm", "web1", "foo")
	code, out, _ = f.cloud(t, "rmi", "web1", strings.TrimPrefix(digest, "sha256:")[:8])
	if code != exitOK || out != "removed image "+digest+" (foo)\n" {
		t.Errorf("cloud rmi web1 PREFIX: exit %d, output %q", code, out)
	}
}

// Partial uploads on a full disk could not be removed (issue 10):
// cloud images --partial lists them, and cloud rmi removes one.
func TestPartialUploads(t *testing.T) {
	f := newFleet(t)
	_, out, errOut := f.cloud(t, "images", "web1", "--partial")
	wantContains(t, "cloud images --partial with none", errOut, "no partial uploads on web1")
	part := "sha256:" + strings.Repeat("ab", 32)
	f.backend.mu.Lock()
	f.backend.uploads[part] = make([]byte, 3<<20)
	f.backend.mu.Unlock()
	code, out, _ := f.cloud(t, "images", "web1", "--partial")
	if code != exitOK {
		t.Fatalf("cloud images web1 --partial: exit %d", code)
	}
	wantContains(t, "cloud images web1 --partial", out, "DIGEST", "RECEIVED", "EXPIRES IN", shortDigest(part), "3.0 MiB")
	code, out, errOut = f.cloud(t, "rmi", "web1", "abababab")
	if code != exitOK || !strings.Contains(out, "removed the partial upload "+part) {
		t.Errorf("cloud rmi web1 PREFIX of a partial upload: exit %d, output %q, %q", code, out, errOut)
	}
	if len(f.backend.uploads) != 0 {
		t.Errorf("the partial upload is still on the node after cloud rmi")
	}
	code, _, errOut = f.cloud(t, "rmi", "web1", "abababab")
	if code != exitFailure || !strings.Contains(errOut, "--partial") {
		t.Errorf("cloud rmi web1 of nothing: exit %d, stderr %q; want 1 pointing at --partial", code, errOut)
	}
}

func TestPickImage(t *testing.T) {
	imgs := []api.Image{
		{Digest: "sha256:abcd1111", Name: "web"},
		{Digest: "sha256:abcd2222", Name: "db"},
		{Digest: "sha256:ffff3333", Name: "web2"},
	}
	for arg, want := range map[string]string{
		"db": "sha256:abcd2222", "abcd1": "sha256:abcd1111", "sha256:ffff": "sha256:ffff3333", "web2": "sha256:ffff3333",
	} {
		if got, err := pickImage(imgs, arg, "web1"); err != nil || got.Digest != want {
			t.Errorf("pickImage(%q) = %s, %v; want %s", arg, got.Digest, err, want)
		}
	}
	for arg, want := range map[string]string{
		"abcd": `"abcd" names 2 images on web1: sha256:abcd1111 (web), sha256:abcd2222 (db); give more of the digest`,
		"abc":  `no image "abc" on web1; cloud images web1 lists them`,
		"nope": `no image "nope" on web1`,
	} {
		if _, err := pickImage(imgs, arg, "web1"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("pickImage(%q) = %v, want an error saying %q", arg, err, want)
		}
	}
}

func TestLogs(t *testing.T) {
	f, _ := started(t)
	f.backend.logs["foo"] = []string{"2026-01-02T03:04:05Z stdout one", "2026-01-02T03:04:06Z stderr two", "2026-01-02T03:04:07Z stdout three"}
	code, out, _ := f.cloud(t, "logs", "web1", "foo")
	if code != exitOK || out != strings.Join(f.backend.logs["foo"], "\n")+"\n" {
		t.Errorf("cloud logs web1 foo: exit %d, output %q; want every line", code, out)
	}
	_, out, _ = f.cloud(t, "logs", "--tail", "1", "web1", "foo.txz")
	if out != "2026-01-02T03:04:07Z stdout three\n" {
		t.Errorf("cloud logs --tail 1 = %q, want the last line", out)
	}
	_, out, _ = f.cloud(t, "logs", "-f", "--tail", "0", "web1", "foo")
	if out != "2026-01-02T03:04:09Z stdout followed\n" {
		t.Errorf("cloud logs -f --tail 0 = %q, want only the followed line", out)
	}
	code, _, errOut := f.cloud(t, "logs", "web1", "nosuch")
	if code != exitFailure || !strings.Contains(errOut, `no container "nosuch"`) {
		t.Errorf("cloud logs web1 nosuch: exit %d, stderr %q", code, errOut)
	}
}

func TestEvents(t *testing.T) {
	f := newFleet(t)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.backend.events = []api.Event{
		{Time: t0, Type: api.EventExit, Container: "foo", Message: "exited", Exit: &api.Exit{Code: 1}},
		{Time: t0, Type: api.EventImage, Image: "sha256:0123456789abcdef", Message: "unpacked app"},
	}
	code, out, _ := f.cloud(t, "events", "web1")
	want := "2026-01-02T03:04:05Z  exit               foo  exited  (exited with code 1)\n" +
		"2026-01-02T03:04:05Z  image              sha256:0123456789ab  unpacked app\n"
	if code != exitOK || out != want {
		t.Errorf("cloud events web1: exit %d, output %q, want %q", code, out, want)
	}
	_, out, _ = f.cloud(t, "events", "web1", "-f", "--json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var last api.Event
	if len(lines) != 3 || json.Unmarshal([]byte(lines[2]), &last) != nil || last.Message != "followed" {
		t.Errorf("cloud events -f --json = %q, want three JSON lines, the last followed", out)
	}
}

func TestAppsUsageErrors(t *testing.T) {
	f := newFleet(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"start", "web1"}, "start takes HOST and FILE, got 1 argument\n"},
		{[]string{"start", "web1", "foo.txz", "--name", "Foo"}, `--name "Foo": use 1-63 lower-case`},
		{[]string{"start", "web1", "foo.txz", "--wait", "0s"}, "--wait 0s: want a positive duration"},
		{[]string{"stop", "web1", "Bad Name"}, `container name "Bad Name"`},
		{[]string{"stop", "web1", "x/Bad.txz"}, `container name "Bad": use 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit (from x/Bad.txz)`},
		{[]string{"logs", "--tail", "-5", "web1", "foo"}, "--tail -5: want a number of lines"},
		{[]string{"rmi", "web1"}, "rmi takes HOST and DIGEST or NAME, got 1 argument\n"},
		{[]string{"ps"}, "ps takes one HOST"},
	} {
		code, _, errOut := f.cloud(t, tt.args...)
		if code != exitUsage {
			t.Errorf("cloud %s: exit %d, want %d", strings.Join(tt.args, " "), code, exitUsage)
		}
		wantContains(t, "cloud "+strings.Join(tt.args, " "), errOut, tt.want)
	}
	if n := f.backend.requests.Load(); n != 0 {
		t.Errorf("usage errors made %d requests, want none", n)
	}
}

func TestAppsHelp(t *testing.T) {
	for _, cmd := range []string{"start", "stop", "restart", "rm", "ps", "logs", "images", "rmi", "events"} {
		code, out, _ := runCloud(t, cmd, "--help")
		if code != exitOK {
			t.Errorf("cloud %s --help: exit %d, want 0", cmd, code)
		}
		wantContains(t, "cloud "+cmd+" --help", out, "Usage:", "Examples:", "  cloud "+cmd+" ")
	}
}

func TestStats(t *testing.T) {
	f, _ := started(t)
	f.backend.stats = map[string]api.ContainerStats{"foo": {Cgroup: true, CPUSeconds: 1.5, Memory: 3 << 20,
		MemoryPeak: 5 << 20, Pids: 4, IORead: 1 << 20, OOMKills: 1}}
	code, out, _ := f.cloud(t, "stats", "web1")
	if code != exitOK {
		t.Fatalf("cloud stats web1: exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("cloud stats web1 = %q, want a header and foo", out)
	}
	wantContains(t, "cloud stats header", lines[0], "NAME", "CPU", "MEMORY", "PEAK", "PIDS", "OOM KILLS")
	wantContains(t, "cloud stats foo", lines[1], "foo", "1.50s", "3.0 MiB", "5.0 MiB", " 4 ", " 1")
	if code, _, errOut := f.cloud(t, "stats", "web1", "nosuch"); code != exitFailure || !strings.Contains(errOut, "nosuch") {
		t.Errorf("cloud stats web1 nosuch = exit %d, %q; want 1 naming it", code, errOut)
	}
}

func TestStatsFollow(t *testing.T) {
	f, _ := started(t)
	f.backend.stats = map[string]api.ContainerStats{"foo": {Cgroup: true, Pids: 4}}
	// The second table interrupts it, as ^C would.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &tablesThenCancel{want: 2, cancel: cancel}
	var errOut bytes.Buffer
	code := run(ctx, []string{"--config", f.dir, "stats", "-f", "--every", "10ms", "web1"}, strings.NewReader(""), out, &errOut)
	if code != exitOK || strings.Count(out.String(), "NAME") < 2 {
		t.Errorf("cloud stats -f web1 = exit %d, %q, %q; want 0 and the table twice", code, out.String(), errOut.String())
	}
	if code, _, errOut := f.cloud(t, "stats", "-f", "--every", "0s", "web1"); code != exitUsage || !strings.Contains(errOut, "--every") {
		t.Errorf("cloud stats -f --every 0s = exit %d, %q; want usage naming --every", code, errOut)
	}
}

// tablesThenCancel cancels once it has seen want table headers.
type tablesThenCancel struct {
	bytes.Buffer
	want   int
	cancel func()
}

func (w *tablesThenCancel) Write(p []byte) (int, error) {
	n, err := w.Buffer.Write(p)
	if strings.Count(w.String(), "NAME") >= w.want {
		w.cancel()
	}
	return n, err
}
