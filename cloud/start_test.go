package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mholt/archives"

	"allium/api"
)

const goodManifest = `{"version": 1, "name": "foo", "command": ["/bin/app"]}`

// entry is a file in a test archive; a name ending in / is a directory.
type entry struct{ name, body string }

// imageEntries are a native image's: the manifest, then rootfs/.
func imageEntries(manifest string, app []byte) []entry {
	return []entry{{"manifest.json", manifest}, {"rootfs/", ""}, {"rootfs/bin/", ""}, {"rootfs/bin/app", string(app)}}
}

// writeArchive writes entries as a tar, compressed by comp unless nil,
// to dir/file, and returns the path and the digest.
func writeArchive(t *testing.T, dir, file string, comp archives.Compressor, entries []entry) (string, string) {
	t.Helper()
	var raw bytes.Buffer
	var w io.Writer = &raw
	var cw io.WriteCloser
	if comp != nil {
		var err error
		if cw, err = comp.OpenWriter(&raw); err != nil {
			t.Fatal(err)
		}
		w = cw
	}
	tw := tar.NewWriter(w)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o755, Typeflag: tar.TypeDir}
		if !strings.HasSuffix(e.name, "/") {
			h = &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, e.body)
	}
	tw.Close()
	if cw != nil {
		cw.Close()
	}
	path := filepath.Join(dir, file)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw.Bytes())
	return path, "sha256:" + hex.EncodeToString(sum[:])
}

// app is incompressible content of n bytes, different for each seed.
func app(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

func TestStartFormats(t *testing.T) {
	for _, tt := range []struct {
		file string
		comp archives.Compressor
	}{
		{"bar/foo.tar.gz", archives.Gz{}},
		{"bar/foo.txz", archives.Xz{}},
		{"foo.tar.zst", archives.Zstd{}},
		{"foo.tar", nil},
	} {
		t.Run(tt.file, func(t *testing.T) {
			f := newFleet(t)
			path, digest := writeArchive(t, t.TempDir(), tt.file, tt.comp, imageEntries(goodManifest, app(1000, 1)))
			code, out, _ := f.cloud(t, "start", "web1", path)
			if code != exitOK {
				t.Fatalf("cloud start web1 %s: exit %d, want 0", tt.file, code)
			}
			wantContains(t, "cloud start web1 "+tt.file, out,
				"sent "+filepath.Base(tt.file)+" to web1: ",
				"created foo from "+shortDigest(digest)+"…\n",
				"foo is running (pid 4242, isolation chroot)\n")
			if c := f.backend.containers["foo"]; c.Image != digest || c.ImageName != "foo" {
				t.Errorf("the node runs foo = %+v, want image %s named foo", c, digest)
			}
		})
	}
}

func TestStartSkipsAnImageAlreadyThere(t *testing.T) {
	f := newFleet(t)
	path, digest := writeArchive(t, t.TempDir(), "foo.txz", archives.Xz{}, imageEntries(goodManifest, app(1000, 1)))
	f.cloud(t, "start", "web1", path)
	code, out, _ := f.cloud(t, "start", "web1", path)
	if code != exitOK {
		t.Fatalf("cloud start web1 foo.txz again: exit %d, want 0", code)
	}
	wantContains(t, "cloud start of an image already there", out,
		"image "+shortDigest(digest)+"… already on web1, not sending it\n",
		"foo already runs "+shortDigest(digest)+"…\n")
	if !slices.Equal(f.backend.puts, []int64{0}) {
		t.Errorf("PutImage offsets = %v, want [0]: the second start sends nothing", f.backend.puts)
	}
}

func TestStartBadImageSendsNothing(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		entries []entry
		want    string
	}{
		{"version", imageEntries(`{"version": 2, "name": "foo", "command": ["/x"]}`, nil),
			"manifest.json: version 2: this node understands version 1"},
		{"field", imageEntries(`{"version": 1, "name": "foo", "command": ["/x"], "restart": {"delay": "5x"}}`, nil),
			`"5x": not a duration (e.g. "5s")`},
		{"unknown", imageEntries(`{"version": 1, "name": "foo", "command": ["/x"], "comand": 1}`, nil),
			`manifest.json: unknown field "comand"`},
		{"late", []entry{{"rootfs/", ""}, {"manifest.json", goodManifest}},
			`entry "rootfs/": comes before manifest.json; manifest.json must be the archive's first entry`},
		{"missing", []entry{{"etc/", ""}, {"etc/x", "y"}}, `entry "etc/": not manifest.json nor under rootfs/: an image is a tar archive`},
		{"top-dir-only", []entry{{"./", ""}}, "no manifest.json in the archive"},
		{"docker", []entry{{"manifest.json", `[{"Config": "x.json"}]`}}, "Docker or OCI image archive"},
		{"oci", []entry{{"oci-layout", `{}`}, {"index.json", `{}`}}, "Docker or OCI image archive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFleet(t)
			path, _ := writeArchive(t, dir, tt.name+".tar.gz", archives.Gz{}, tt.entries)
			code, _, errOut := f.cloud(t, "start", "web1", path)
			if code != exitFailure {
				t.Errorf("cloud start web1 %s.tar.gz: exit %d, want %d", tt.name, code, exitFailure)
			}
			wantContains(t, "cloud start of a bad image", errOut, path+": ", tt.want, "nothing was sent to web1")
			if n := f.backend.requests.Load(); n != 0 {
				t.Errorf("cloud start of a bad image made %d requests, want none", n)
			}
		})
	}
}

func TestStartNotAnArchive(t *testing.T) {
	f := newFleet(t)
	path := filepath.Join(t.TempDir(), "foo.txz")
	os.WriteFile(path, app(5000, 9), 0o644)
	_, _, errOut := f.cloud(t, "start", "web1", path)
	wantContains(t, "cloud start of random bytes", errOut, "not an archive: an image is a tar archive")
	_, _, errOut = f.cloud(t, "start", "web1", filepath.Join(t.TempDir(), "nosuch.txz"))
	wantContains(t, "cloud start of a missing file", errOut, "nosuch.txz: no such file or directory")
	if n := f.backend.requests.Load(); n != 0 {
		t.Errorf("made %d requests, want none", n)
	}
}

// TestStartResumesAfterDrop: the connection drops in the middle of the
// upload; cloud asks the node where it stands and sends only the rest.
func TestStartResumesAfterDrop(t *testing.T) {
	f := newFleet(t)
	path, digest := writeArchive(t, t.TempDir(), "foo.tar", nil, imageEntries(goodManifest, app(600_000, 2)))
	f.backend.dropAt = 250_000
	code, out, errOut := f.cloud(t, "start", "web1", path)
	if code != exitOK {
		t.Fatalf("cloud start through a dropped connection: exit %d, want 0", code)
	}
	wantContains(t, "stderr of cloud start through a dropped connection", errOut,
		"upload interrupted after sending ", "the connection dropped", "resuming in 1s", "web1 kept 244.1 KiB; resuming from there")
	wantContains(t, "cloud start through a dropped connection", out, ", resumed 1 time\n", "foo is running")
	if !slices.Equal(f.backend.puts, []int64{0, 250_000}) {
		t.Errorf("PutImage offsets = %v, want [0 250000]", f.backend.puts)
	}
	if _, ok := f.backend.images[digest]; !ok {
		t.Errorf("the node has no image %s after the resumed upload", digest)
	}
}

func TestStartResumesAnEarlierUpload(t *testing.T) {
	f := newFleet(t)
	path, digest := writeArchive(t, t.TempDir(), "foo.tar", nil, imageEntries(goodManifest, app(100_000, 3)))
	b, _ := os.ReadFile(path)
	f.backend.uploads[digest] = b[:40_000]
	code, _, errOut := f.cloud(t, "start", "web1", path)
	if code != exitOK {
		t.Fatalf("cloud start after an interrupted one: exit %d, want 0", code)
	}
	wantContains(t, "cloud start after an interrupted one", errOut, "web1 has 39.1 KiB of foo.tar from an earlier upload")
	if !slices.Equal(f.backend.puts, []int64{40_000}) {
		t.Errorf("PutImage offsets = %v, want [40000]", f.backend.puts)
	}
}

func TestStartReplaces(t *testing.T) {
	f := newFleet(t)
	dir := t.TempDir()
	v1, d1 := writeArchive(t, dir, "v1/foo.txz", archives.Xz{}, imageEntries(goodManifest, app(100, 1)))
	v2, d2 := writeArchive(t, dir, "v2/foo.txz", archives.Xz{}, imageEntries(goodManifest, app(100, 2)))
	f.cloud(t, "start", "web1", v1)
	code, out, _ := f.cloud(t, "start", "web1", v2)
	if code != exitOK {
		t.Fatalf("cloud start web1 v2/foo.txz: exit %d, want 0", code)
	}
	wantContains(t, "cloud start of a new image under a running name", out,
		"replaced foo ("+shortDigest(d1)+"… → "+shortDigest(d2)+"…)\n", "foo is running")
}

func TestStartRestartsAStoppedContainer(t *testing.T) {
	f := newFleet(t)
	path, _ := writeArchive(t, t.TempDir(), "foo.txz", archives.Xz{}, imageEntries(goodManifest, nil))
	f.cloud(t, "start", "web1", path)
	f.cloud(t, "stop", "web1", "foo")
	_, out, _ := f.cloud(t, "start", "web1", path)
	wantContains(t, "cloud start of a stopped container", out, "starting foo again", "foo is running")
	if got := f.backend.actions; !slices.Equal(got, []string{"put foo", "stop foo", "put foo", "start foo"}) {
		t.Errorf("the node was asked %q, want put, stop, put, start", got)
	}
}

func TestStartWaitsForReady(t *testing.T) {
	f := newFleet(t)
	path, _ := writeArchive(t, t.TempDir(), "foo.txz", archives.Xz{}, imageEntries(goodManifest, nil))
	f.backend.scripts["foo"] = []string{api.StateStarting, api.StateStarting, api.StateRunning}
	code, out, _ := f.cloud(t, "start", "web1", path)
	if code != exitOK || strings.Count(out, "foo: starting") != 1 {
		t.Errorf("cloud start of a slow starter: exit %d, output %q; want 0 and one starting line", code, out)
	}
	wantContains(t, "cloud start of a slow starter", out, "foo: starting (waiting until it is ready)\nfoo is running")
}

func TestStartReportsAFailure(t *testing.T) {
	f := newFleet(t)
	path, _ := writeArchive(t, t.TempDir(), "foo.txz", archives.Xz{}, imageEntries(goodManifest, nil))
	f.backend.scripts["foo"] = []string{api.StateBackoff}
	f.backend.logs["foo"] = []string{"2026-01-02T03:04:05Z stderr app: cannot open /etc/app.conf"}
	code, _, errOut := f.cloud(t, "start", "web1", path)
	if code != exitFailure {
		t.Errorf("cloud start of a crashing app: exit %d, want %d", code, exitFailure)
	}
	wantContains(t, "cloud start of a crashing app", errOut,
		"last lines of the log of foo:\n  2026-01-02T03:04:05Z stderr app: cannot open /etc/app.conf\n",
		"foo did not start: exited with code 3; the node restarts it in ", "and keeps trying",
		"See cloud logs web1 foo")
}

func TestStartNoWait(t *testing.T) {
	f := newFleet(t)
	path, _ := writeArchive(t, t.TempDir(), "foo.txz", archives.Xz{}, imageEntries(goodManifest, nil))
	f.backend.scripts["foo"] = []string{api.StateBackoff}
	code, out, _ := f.cloud(t, "start", "--no-wait", "web1", path)
	if code != exitOK || strings.Contains(out, "running") {
		t.Errorf("cloud start --no-wait: exit %d, output %q; want 0 and no wait", code, out)
	}
}

func TestStartName(t *testing.T) {
	f := newFleet(t)
	dir := t.TempDir()
	path, _ := writeArchive(t, dir, "foo.txz", archives.Xz{}, imageEntries(goodManifest, nil))
	if code, out, _ := f.cloud(t, "start", "web1", path, "--name", "foo-staging"); code != exitOK || !strings.Contains(out, "created foo-staging") {
		t.Errorf("cloud start --name foo-staging: exit %d, output %q; want foo-staging created", code, out)
	}
	odd, _ := writeArchive(t, dir, "My App.txz", archives.Xz{}, imageEntries(goodManifest, nil))
	code, _, errOut := f.cloud(t, "start", "web1", odd)
	if code != exitUsage {
		t.Errorf("cloud start of \"My App.txz\": exit %d, want %d", code, exitUsage)
	}
	wantContains(t, "cloud start of \"My App.txz\"", errOut, `container name "My App"`, "choose one with --name")
}

func TestNodeWithoutApps(t *testing.T) {
	f := newFleet(t)
	addr, key := serve(t, struct {
		api.UnimplementedApps
		*fakeBackend
	}{fakeBackend: f.backend})
	f.alias(t, "old", addr, key)
	path, _ := writeArchive(t, t.TempDir(), "foo.txz", archives.Xz{}, imageEntries(goodManifest, nil))
	code, _, errOut := f.cloud(t, "start", "old", path)
	if code != exitFailure {
		t.Errorf("cloud start on a node without apps: exit %d, want %d", code, exitFailure)
	}
	wantContains(t, "cloud start on a node without apps", errOut, "images and containers are unavailable on this node", "HTTP 501")
}

func TestBaseName(t *testing.T) {
	for in, want := range map[string]string{
		"bar/foo.txz": "foo", "foo.tar.zst": "foo", "foo.tar.gz": "foo", "foo.tgz": "foo", "/a/b/foo.tar": "foo",
		"foo": "foo", "foo.v2": "foo.v2", ".tar": ".tar", "foo.tar.bz2": "foo", "app-1.2.tar.xz": "app-1.2",
	} {
		if got := baseName(in); got != want {
			t.Errorf("baseName(%q) = %q, want %q", in, got, want)
		}
	}
}

// cloud start HOST NAME starts an existing container when no file NAME
// is here (issue 10: clearing boot-loop protection's hold).
func TestStartByName(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "app")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct {
		arg, flag string
		want      bool
	}{
		{"nosuchfile", "", true},
		{file, "", false},
		{"nosuchfile", "other", false},
		{"app.txz/x", "", false},
	} {
		if got := byName(tc.arg, tc.flag); got != tc.want {
			t.Errorf("byName(%q, %q) = %v, want %v", tc.arg, tc.flag, got, tc.want)
		}
	}
}
