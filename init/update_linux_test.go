package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"allium/api"
	"allium/internal/testbin"
	"allium/internal/testkit"
	"allium/state"
)

func TestVersionJSON(t *testing.T) {
	var out, errb bytes.Buffer
	if code := versionMain([]string{"--json"}, &out, &errb); code != 0 {
		t.Fatalf("versionMain(--json) = %d (%s), want 0", code, errb.String())
	}
	var v api.InitVersion
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Fatalf("init version --json printed %q: %v", out.String(), err)
	}
	want := api.InitVersion{Version: version, StateSchema: state.SchemaVersion, Arch: runtime.GOARCH, Handover: handoverVersion}
	if v != want {
		t.Errorf("init version --json = %+v, want %+v", v, want)
	}
	if code := versionMain([]string{"--yaml"}, &out, &errb); code != 2 {
		t.Errorf("versionMain(--yaml) = %d, want 2 (usage)", code)
	}
}

// fakeInitSrc is an init that says what its mode (set by -X at build
// time) makes it say: it is run as `PATH version --json`, with no way
// to pass it more.
const fakeInitSrc = `package main

import (
	"fmt"
	"os"
	"runtime"
	"time"
)

var mode string

func main() {
	switch mode {
	case "exit1":
		fmt.Println("unknown command version")
		os.Exit(1)
	case "hang":
		time.Sleep(time.Hour)
	case "badjson":
		fmt.Println("version: 1.2.3")
	case "oldschema":
		fmt.Printf("{\"version\": \"v0.0.1\", \"state_schema\": 1, \"arch\": %q, \"handover\": 1}\n", runtime.GOARCH)
	case "handover":
		fmt.Printf("{\"version\": \"v9\", \"state_schema\": 2, \"arch\": %q, \"handover\": 7}\n", runtime.GOARCH)
	default:
		fmt.Printf("{\"version\": \"v-fake\", \"state_schema\": 99, \"arch\": %q, \"handover\": 1}\n", runtime.GOARCH)
	}
}
`

// buildFake builds fakeInitSrc in mode, statically, for goarch.
func buildFake(t *testing.T, mode, goarch string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte(fakeInitSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "init-"+mode)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.mode="+mode, "-o", out, src)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH="+goarch, "GOOS=linux", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build the fake init (%s, %s): %v\n%s", mode, goarch, err, b)
	}
	return out
}

// hostileInits are the inits a node must refuse, by name: each file,
// and what the refusal must say.
type hostileInit struct {
	name, path, want string
	timeout          time.Duration
}

func hostileInits(t *testing.T, real string) []hostileInit {
	t.Helper()
	dir := t.TempDir()
	whole, err := os.ReadFile(real)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated")
	os.WriteFile(truncated, whole[:len(whole)/2], 0o755)
	random := filepath.Join(dir, "random")
	os.WriteFile(random, app(4096), 0o755)
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	return []hostileInit{
		{"truncated", truncated, "truncated", 0},
		{"random", random, "not an ELF executable", 0},
		{"dynamic", "/bin/true", "dynamically linked", 0},
		{"other arch", buildFake(t, "good", other), "this node runs", 0},
		{"exits 1", buildFake(t, "exit1", runtime.GOARCH), "exited with status 1", 0},
		{"hangs", buildFake(t, "hang", runtime.GOARCH), "did not answer within", time.Second},
		{"bad json", buildFake(t, "badjson", runtime.GOARCH), "printed no version JSON", 0},
		{"old schema", buildFake(t, "oldschema", runtime.GOARCH), "understands state schema 1", 0},
		{"other handover", buildFake(t, "handover", runtime.GOARCH), "handover protocol 7", 0},
	}
}

// app is n bytes of noise.
func app(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func testChecker(t *testing.T) initChecker {
	t.Helper()
	want, err := elfOf("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	return initChecker{Starter: testkit.Starter, Want: want, Self: selfVersion()}
}

func TestCheckInit(t *testing.T) {
	real := testbin.Path(t, "init")
	c := testChecker(t)
	v, err := c.check(t.Context(), real)
	if err != nil || v.StateSchema != state.SchemaVersion || v.Handover != handoverVersion || v.Arch != runtime.GOARCH || v.Version == "" {
		t.Errorf("check(the real init) = %+v, %v; want its version", v, err)
	}
	if v, err := c.check(t.Context(), buildFake(t, "good", runtime.GOARCH)); err != nil || v.Version != "v-fake" {
		t.Errorf("check(a newer init) = %+v, %v; want v-fake", v, err)
	}
	for _, h := range hostileInits(t, real) {
		c.Timeout = h.timeout
		_, err := c.check(t.Context(), h.path)
		if err == nil || !strings.Contains(err.Error(), h.want) {
			t.Errorf("check(%s) = %v, want an error saying %q", h.name, err, h.want)
		}
	}
}

// testInits is an initStore in a temporary directory, recording its
// events.
type testInits struct {
	*initStore
	mu     sync.Mutex
	events []string
}

func newTestInits(t *testing.T, c initChecker) *testInits {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "inits")
	if err := openInits(dir); err != nil {
		t.Fatal(err)
	}
	ti := &testInits{}
	ti.initStore = &initStore{dir: dir, check: c.check, log: testLogger(t.Output()),
		room: func() (int64, error) { return 1 << 40, nil },
		record: func(ev api.Event) {
			ti.mu.Lock()
			ti.events = append(ti.events, ev.Message)
			ti.mu.Unlock()
		}}
	return ti
}

func (ti *testInits) files(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(ti.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func fileDigestT(t *testing.T, path string) (string, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := fileDigest(path)
	if err != nil {
		t.Fatal(err)
	}
	return d, b
}

// TestPutInit sends the real init in two parts: it is checked and
// staged. Then every hostile init is refused with its reason, an event
// says so, and nothing of it is left: inits/ holds the staged init
// alone.
func TestPutInit(t *testing.T) {
	real := testbin.Path(t, "init")
	c := testChecker(t)
	s := newTestInits(t, c)
	ctx := t.Context()
	d, b := fileDigestT(t, real)
	total := int64(len(b))
	half := total / 2
	if _, err := s.Put(ctx, d, 0, total, bytes.NewReader(b[:half])); err == nil {
		t.Fatalf("Put(half) = nil, want the upload to have stopped short")
	}
	if got := s.Offset(d); got != half {
		t.Fatalf("Offset after half = %d, want %d", got, half)
	}
	if _, err := s.Put(ctx, d, 0, total, bytes.NewReader(b)); !isOffset(err, half) {
		t.Errorf("Put(from 0 again) = %v, want an offset mismatch at %d", err, half)
	}
	in, err := s.Put(ctx, d, half, total, bytes.NewReader(b[half:]))
	if err != nil || in.Digest != d || in.Size != total || in.Version == "" {
		t.Fatalf("Put(the rest) = %+v, %v; want it staged", in, err)
	}
	staged := []string{strings.TrimPrefix(d, "sha256:"), strings.TrimPrefix(d, "sha256:") + ".json"}
	if got := s.files(t); !slices.Equal(got, staged) {
		t.Fatalf("inits/ = %v, want %v", got, staged)
	}
	if st := s.Staged(); st == nil || st.Digest != d {
		t.Errorf("Staged() = %+v, want %s", st, d)
	}

	// A file whose digest is not the one named.
	if _, err := s.Put(ctx, zeroDigest(), 0, total, bytes.NewReader(b)); err == nil || !strings.Contains(err.Error(), "has the digest "+d) {
		t.Errorf("Put(wrong digest) = %v, want the mismatch named", err)
	}
	for _, h := range hostileInits(t, real) {
		s.initStore.check = initChecker{Starter: c.Starter, Want: c.Want, Self: c.Self, Timeout: h.timeout}.check
		hd, hb := fileDigestT(t, h.path)
		_, err := s.Put(ctx, hd, 0, int64(len(hb)), bytes.NewReader(hb))
		t.Logf("Put(%s) = %v", h.name, err)
		if err == nil || !strings.Contains(err.Error(), h.want) {
			t.Errorf("Put(%s) = %v, want an error saying %q", h.name, err, h.want)
		}
		if got := s.files(t); !slices.Equal(got, staged) {
			t.Errorf("after Put(%s), inits/ = %v, want the staged init alone %v", h.name, got, staged)
		}
		if last := s.events[len(s.events)-1]; !strings.Contains(last, "refused") || !strings.Contains(last, h.want) {
			t.Errorf("after Put(%s), the last event = %q, want a refusal saying %q", h.name, last, h.want)
		}
	}
	if st := s.Staged(); st == nil || st.Digest != d {
		t.Errorf("Staged() after the refusals = %+v, want %s still", st, d)
	}
}

func isOffset(err error, at int64) bool {
	var e *api.OffsetError
	return err != nil && errors.As(err, &e) && e.Offset == at
}

func zeroDigest() string { return "sha256:" + strings.Repeat("0", 64) }

// TestPutInitTooBigForTheDisk: an init that does not fit is refused
// before a byte is written.
func TestPutInitTooBigForTheDisk(t *testing.T) {
	s := newTestInits(t, initChecker{})
	s.room = func() (int64, error) { return 10, nil }
	_, err := s.Put(context.Background(), zeroDigest(), 0, 11, bytes.NewReader(make([]byte, 11)))
	var e *api.Error
	if !errors.As(err, &e) || e.Code != api.CodeTooLarge {
		t.Errorf("Put(11 bytes, room for 10) = %v, want too_large", err)
	}
	if got := s.files(t); len(got) != 0 {
		t.Errorf("inits/ = %v after a refused upload, want it empty", got)
	}
}
