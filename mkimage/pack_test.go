package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"

	"allium/manifest"

	"github.com/mholt/archives"
)

// tarEntry is one member of an image read back.
type tarEntry struct {
	hdr  tar.Header
	data []byte
}

// readImage decompresses an image with mholt/archives, as the node
// does, and returns its entries in order.
func readImage(t *testing.T, file string) []tarEntry {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	format, stream, err := archives.Identify(context.Background(), filepath.Base(file), f)
	if err != nil {
		t.Fatalf("archives.Identify(%s) = %v", file, err)
	}
	r := stream
	if dec, ok := format.(archives.Decompressor); ok {
		rc, err := dec.OpenReader(stream)
		if err != nil {
			t.Fatalf("%s: OpenReader: %v", file, err)
		}
		defer rc.Close()
		r = rc
	}
	return readTar(t, r)
}

func readTar(t *testing.T, r io.Reader) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("tar %s: %v", h.Name, err)
		}
		out = append(out, tarEntry{*h, data})
	}
}

// byName indexes entries by name.
func byName(entries []tarEntry) map[string]tarEntry {
	m := map[string]tarEntry{}
	for _, e := range entries {
		m[e.hdr.Name] = e
	}
	return m
}

// manifestOf checks that the first entry is a manifest ParseManifest
// accepts, and returns it.
func manifestOf(t *testing.T, entries []tarEntry) *manifest.Manifest {
	t.Helper()
	if len(entries) == 0 || entries[0].hdr.Name != manifest.File {
		t.Fatalf("first entry = %v, want %s", entries[:min(len(entries), 1)], manifest.File)
	}
	m, err := manifest.Parse(bytes.NewReader(entries[0].data))
	if err != nil {
		t.Fatalf("ParseManifest(%s) = %v", entries[0].data, err)
	}
	return m
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, data := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// makeTree lays out a small tree with every kind of entry pack handles.
func makeTree(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	writeFiles(t, dir, map[string]string{
		"bin/app":         "#!/bin/sh\necho hi\n",
		"etc/app.conf":    "port=8080\n",
		"www/index.html":  "<h1>hi</h1>\n",
		"www/a.txt":       "a\n",
		"www/a/b.txt":     "b\n",
		"srv/setuid":      "s\n",
		".hidden/dotfile": "dot\n",
	})
	must(t, os.Mkdir(filepath.Join(dir, "empty"), 0o700))
	must(t, os.Chmod(filepath.Join(dir, "bin/app"), 0o750))
	must(t, os.Chmod(filepath.Join(dir, "srv/setuid"), 0o755|os.ModeSetuid))
	must(t, os.Chmod(filepath.Join(dir, "empty"), 0o700))
	must(t, os.Chmod(filepath.Join(dir, "www"), 0o755|os.ModeSetgid))
	must(t, os.Symlink("../www/index.html", filepath.Join(dir, "etc/index-link")))
	must(t, os.Symlink("/bin/app", filepath.Join(dir, "abs-link")))
	must(t, os.Link(filepath.Join(dir, "www/index.html"), filepath.Join(dir, "bin/hardlink")))
	must(t, syscall.Mkfifo(filepath.Join(dir, "srv/fifo"), 0o600))
	l, err := net.Listen("unix", filepath.Join(dir, "srv/sock"))
	must(t, err)
	t.Cleanup(func() { l.Close() })
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestPackDir(t *testing.T) {
	dir := makeTree(t)
	out := filepath.Join(t.TempDir(), "web.tar")
	code, stdout, stderr := runMkimage(t, "pack", dir, "-o", out, "--cmd", `/bin/app -p "8080 x"`,
		"--env", "A=1", "--env", "B=x=y", "--user", "nobody", "--workdir", "/srv", "--restart", "on-failure",
		"--stop-signal", "SIGINT", "--stop-timeout", "3s", "--volume", "data:/var/lib/data",
		"--port", "8080", "--port", "53/udp", "--ready-tcp", "8080")
	if code != 0 {
		t.Fatalf("pack = %d, want 0; stderr:\n%s", code, stderr)
	}
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	entries := readImage(t, out)
	got := manifestOf(t, entries)
	want := &manifest.Manifest{Version: 1, Name: "web", Command: []string{"/bin/app", "-p", "8080 x"},
		Env: map[string]string{"A": "1", "B": "x=y"}, User: "nobody", Workdir: "/srv",
		Restart: manifest.Restart{Policy: "on-failure"},
		Stop:    manifest.Stop{Signal: "SIGINT", Timeout: manifest.Duration{D: 3 * time.Second}},
		Volumes: []manifest.Volume{{Name: "data", Path: "/var/lib/data"}},
		Ports:   []manifest.Port{{Port: 8080}, {Port: 53, Protocol: "udp"}},
		Ready:   &manifest.Ready{TCP: 8080}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("manifest = %s, want %s", jsonString(got), jsonString(want))
	}
	checkSorted(t, entries)
	checkTreeEntries(t, byName(entries))
	for _, w := range []string{"skipped sockets", "/srv/sock", "dropped setuid/setgid bits", "/srv/setuid"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr = %q, want it to mention %q", stderr, w)
		}
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// checkSorted checks that names after the manifest are sorted, with
// rootfs/ first.
func checkSorted(t *testing.T, entries []tarEntry) {
	t.Helper()
	var names []string
	for _, e := range entries[1:] {
		names = append(names, strings.TrimSuffix(e.hdr.Name, "/"))
	}
	if !slices.IsSorted(names) || names[0] != manifest.RootfsDir {
		t.Errorf("names = %q, want sorted, starting with %s", names, manifest.RootfsDir)
	}
}

func checkTreeEntries(t *testing.T, m map[string]tarEntry) {
	t.Helper()
	want := []struct {
		name string
		typ  byte
		mode int64
		link string
		data string
	}{
		{"rootfs/", tar.TypeDir, 0o755, "", ""}, // the TempDir is 0700
		{"rootfs/bin/app", tar.TypeReg, 0o750, "", "#!/bin/sh\necho hi\n"},
		// The first of two hard links in written order holds the data.
		{"rootfs/bin/hardlink", tar.TypeReg, 0o644, "", "<h1>hi</h1>\n"},
		{"rootfs/www/index.html", tar.TypeLink, 0o644, "rootfs/bin/hardlink", ""},
		{"rootfs/etc/index-link", tar.TypeSymlink, 0o777, "../www/index.html", ""},
		{"rootfs/abs-link", tar.TypeSymlink, 0o777, "/bin/app", ""},
		{"rootfs/empty/", tar.TypeDir, 0o700, "", ""},
		{"rootfs/www/", tar.TypeDir, 0o2755, "", ""}, // the node allows setgid directories
		{"rootfs/.hidden/dotfile", tar.TypeReg, 0o644, "", "dot\n"},
		{"rootfs/srv/setuid", tar.TypeReg, 0o755, "", "s\n"},
		{"rootfs/srv/fifo", tar.TypeFifo, 0o600, "", ""},
	}
	for _, w := range want {
		e, ok := m[w.name]
		if !ok {
			t.Errorf("no entry %s", w.name)
			continue
		}
		h := e.hdr
		if h.Typeflag != w.typ || h.Mode != w.mode || h.Linkname != w.link || string(e.data) != w.data || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s = type %c mode %o link %q data %q owner %d:%d, want type %c mode %o link %q data %q owner 0:0",
				w.name, h.Typeflag, h.Mode, h.Linkname, e.data, h.Uid, h.Gid, w.typ, w.mode, w.link, w.data)
		}
	}
	if _, ok := m["rootfs/srv/sock"]; ok {
		t.Errorf("the socket rootfs/srv/sock was packed, want it skipped")
	}
}

func TestPackReproducible(t *testing.T) {
	dir := makeTree(t)
	future := time.Now().Add(48 * time.Hour)
	must(t, os.Chtimes(filepath.Join(dir, "etc/app.conf"), future, future))
	epoch := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	t.Setenv("SOURCE_DATE_EPOCH", "1704164645")
	for _, ext := range []string{".tar", ".txz", ".tar.zst"} {
		var images [][]byte
		for i := range 2 {
			out := filepath.Join(t.TempDir(), "app"+ext)
			if code, _, stderr := runMkimage(t, "pack", dir, "-o", out, "--cmd", "/bin/app"); code != 0 {
				t.Fatalf("pack #%d = %d, want 0; stderr:\n%s", i, code, stderr)
			}
			b, err := os.ReadFile(out)
			must(t, err)
			images = append(images, b)
		}
		if !bytes.Equal(images[0], images[1]) {
			t.Errorf("pack %s twice: outputs differ (%d and %d bytes), want byte-identical", ext, len(images[0]), len(images[1]))
		}
	}
	out := filepath.Join(t.TempDir(), "app.tar")
	runMkimage(t, "pack", dir, "-o", out, "--cmd", "/bin/app")
	m := byName(readImage(t, out))
	for _, name := range []string{"manifest.json", "rootfs/etc/app.conf"} {
		if got := m[name].hdr.ModTime; !got.Equal(epoch) {
			t.Errorf("%s mtime = %v, want SOURCE_DATE_EPOCH %v", name, got, epoch)
		}
	}
}

// Packing a directory into a file inside it must not pack the image (or
// the previous one) into itself.
func TestPackOutputInsideDir(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"data": "x"})
	out := filepath.Join(dir, "self.tar")
	for i := range 2 {
		if code, _, stderr := runMkimage(t, "pack", dir, "-o", out, "--cmd", "/x"); code != 0 {
			t.Fatalf("pack #%d = %d; stderr:\n%s", i, code, stderr)
		}
	}
	var names []string
	for _, e := range readImage(t, out) {
		names = append(names, e.hdr.Name)
	}
	if want := []string{"manifest.json", "rootfs/", "rootfs/data"}; !slices.Equal(names, want) {
		t.Errorf("entries = %q, want %q", names, want)
	}
}

// A symlink that climbs out of DIR is refused at pack time, since the
// node would refuse the whole image after the upload.
func TestPackEscapingSymlink(t *testing.T) {
	for _, target := range []string{"../../outside", "../a/../../x", "../.."} {
		dir := t.TempDir()
		must(t, os.MkdirAll(filepath.Join(dir, "a"), 0o755))
		must(t, os.Symlink(target, filepath.Join(dir, "a/link")))
		code, _, stderr := runMkimage(t, "pack", dir, "-o", filepath.Join(t.TempDir(), "x.tar"), "--cmd", "/x")
		if code != 1 || !strings.Contains(stderr, "/a/link -> "+target) {
			t.Errorf("pack with a/link -> %s = %d, stderr %q; want 1, naming the link", target, code, stderr)
		}
	}
	if climbsOut("a/b", "../c") || climbsOut("a", "/../../x") || !climbsOut("a", "../..") {
		t.Errorf("climbsOut: wrong answer for a/b -> ../c, a -> /../../x or a -> ../..")
	}
}

func TestPackOwnerKeep(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"f": "x"})
	out := filepath.Join(t.TempDir(), "o.tar")
	if code, _, stderr := runMkimage(t, "pack", dir, "-o", out, "--cmd", "/x", "--owner", "keep"); code != 0 {
		t.Fatalf("pack = %d; stderr:\n%s", code, stderr)
	}
	h := byName(readImage(t, out))["rootfs/f"].hdr
	if h.Uid != os.Getuid() || h.Gid != os.Getgid() {
		t.Errorf("--owner keep: rootfs/f owner = %d:%d, want %d:%d", h.Uid, h.Gid, os.Getuid(), os.Getgid())
	}
	runMkimage(t, "pack", dir, "-o", out, "--cmd", "/x", "--owner", "1000:50")
	if h := byName(readImage(t, out))["rootfs/f"].hdr; h.Uid != 1000 || h.Gid != 50 {
		t.Errorf("--owner 1000:50: rootfs/f owner = %d:%d, want 1000:50", h.Uid, h.Gid)
	}
}

func TestPackManifestBase(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.json")
	writeFiles(t, dir, map[string]string{"base.json": `{"version": 1, "name": "svc", "command": ["/bin/svc"],
		"env": {"A": "base", "KEEP": "1"}, "resources": {"pids": 64}}`})
	out := filepath.Join(t.TempDir(), "other.tgz")
	code, _, stderr := runMkimage(t, "pack", dir, "-o", out, "--manifest", base, "--env", "A=flag", "--user", "1000")
	if code != 0 {
		t.Fatalf("pack = %d; stderr:\n%s", code, stderr)
	}
	got := manifestOf(t, readImage(t, out))
	want := &manifest.Manifest{Version: 1, Name: "svc", Command: []string{"/bin/svc"}, User: "1000",
		Env: map[string]string{"A": "flag", "KEEP": "1"}, Resources: manifest.Resources{Pids: 64}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("manifest = %s, want %s", jsonString(got), jsonString(want))
	}
}

func TestPackErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"bad.json": `{"version": 1, "nmae": "x"}`})
	out := filepath.Join(t.TempDir(), "a.tar")
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{dir, "--cmd", "/x"}, 2, "-o/--output is required"},
		{[]string{"-o", out, "--cmd", "/x"}, 2, "give a directory or --binary"},
		{[]string{dir, "--binary", "/bin/true", "-o", out}, 2, "give a directory or --binary"},
		{[]string{dir, "-o", out}, 2, "--cmd is required"},
		{[]string{dir, "-o", out, "--cmd", `/x "unterminated`}, 2, "--cmd"},
		{[]string{dir, "-o", out, "--cmd", `["/x", 1]`}, 2, "--cmd"},
		{[]string{dir, "-o", out, "--cmd", "/x", "--env", "NOEQUALS"}, 2, "--env"},
		{[]string{dir, "-o", out, "--cmd", "/x", "--env", "1X=y"}, 2, "--env"},
		{[]string{dir, "-o", out, "--cmd", "/x", "--user", "Bad User"}, 2, "--user"},
		{[]string{dir, "-o", out, "--cmd", "/x", "--workdir", "rel"}, 2, "--workdir"},
		{[]string{dir, "-o", out, "--cmd", "/x", "--volume", "data"}, 2, "--volume"},
		{[]string{dir, "-o", out, "--cmd", "/x", "--volume", "Data:/d"}, 2, "--volume"},
		{[]string{dir, "-o", out, "--cmd", "/x", "--port", "http"}, 2, "--port"},
		{[]string{dir, "-o", out, "--cmd", "/x", "--port", "70000"}, 2, "--port"},
		{[]string{dir, "-o", out, "--cmd", "/x", "--restart", "sometimes"}, 2, "--restart"},
		{[]string{dir, "-o", out, "--cmd", "/x", "--stop-signal", "SIGFOO"}, 2, "--stop-signal"},
		{[]string{dir, "-o", out, "--cmd", "/x", "--stop-timeout", "0s"}, 2, "--stop-timeout"},
		{[]string{dir, "-o", out, "--cmd", "/x", "--ready-tcp", "80", "--ready-http", "http://x/"}, 2, "ready-http"},
		{[]string{dir, "-o", out, "--cmd", "/x", "--ready-http", "ftp://x/"}, 2, "--ready-http"},
		{[]string{dir, "-o", out, "--cmd", "/x", "--owner", "root"}, 2, "--owner"},
		{[]string{dir, "-o", out, "--cmd", "/x", "--block-size", "1K"}, 2, "--block-size"},
		{[]string{dir, "-o", out, "--cmd", "/x", "--compress", "rar"}, 2, "--compress"},
		{[]string{dir, "-o", out + ".rar", "--cmd", "/x"}, 2, "cannot tell the compression"},
		{[]string{dir, "-o", filepath.Join(dir, "Bad_Name!.tar"), "--cmd", "/x"}, 2, "--name is required"},
		{[]string{dir, "-o", out, "--cmd", "/x", "--volume", "d:/a", "--volume", "d:/b"}, 2, "used twice"},
		{[]string{filepath.Join(dir, "missing"), "-o", out, "--cmd", "/x"}, 1, "missing"},
		{[]string{dir, "-o", out, "--manifest", filepath.Join(dir, "bad.json")}, 1, "nmae"},
		{[]string{"--binary", filepath.Join(dir, "bad.json"), "-o", out}, 1, "--binary"},
		{[]string{"--binary", filepath.Join(dir, "missing"), "-o", out}, 1, "missing"},
	}
	for _, tt := range tests {
		code, _, stderr := runMkimage(t, append([]string{"pack"}, tt.args...)...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("mkimage pack %q = %d, stderr %q; want %d, mentioning %q", tt.args, code, stderr, tt.code, tt.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("%s exists after failed runs, want no output", out)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".a.tar.*")); len(left) != 0 {
		t.Errorf("temporary files left: %q", left)
	}
}

// otherSpace is white space strings.Fields splits at and --cmd does not.
func otherSpace(r rune) bool { return unicode.IsSpace(r) && !strings.ContainsRune(" \t\n", r) }

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"/bin/httpd -f -p 8080", []string{"/bin/httpd", "-f", "-p", "8080"}},
		{"  /x   a\tb ", []string{"/x", "a", "b"}},
		{`/x 'a b' "c d" e\ f`, []string{"/x", "a b", "c d", "e f"}},
		{`/x '' ""`, []string{"/x", "", ""}},
		{`/x "a \"q\" \\ \n"`, []string{"/x", `a "q" \ \n`}},
		{`/x 'it''s' a"b"c`, []string{"/x", "its", "abc"}},
		{`/x '\n'`, []string{"/x", `\n`}},
		{`["/bin/sh", "-c", "echo a b"]`, []string{"/bin/sh", "-c", "echo a b"}},
		{"", nil},
	}
	for _, tt := range tests {
		got, err := splitCommand(tt.in)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("splitCommand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{`/x 'a`, `/x "a`, `/x a\`, `[1, 2]`, `["/x"`} {
		if got, err := splitCommand(bad); err == nil {
			t.Errorf("splitCommand(%q) = %q, nil; want an error", bad, got)
		}
	}
}

// FuzzSplitCommand checks that --cmd never panics, and that words with
// no quotes or backslashes split as strings.Fields does.
func FuzzSplitCommand(f *testing.F) {
	for _, s := range []string{"/bin/httpd -f", `a 'b c' "d\"e"`, `["a"]`, `x\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := splitCommand(s)
		if strings.ContainsAny(s, `'"\[`) || strings.ContainsFunc(s, otherSpace) {
			return
		}
		if want := strings.Fields(s); err != nil || !slices.Equal(got, want) {
			t.Errorf("splitCommand(%q) = %q, %v; want %q", s, got, err, want)
		}
	})
}
