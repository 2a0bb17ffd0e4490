package qemutests

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The images TestApps pushes, made in the test: by the real mkimage pack
// from directories built here, and, for the hostile ones, by archive/tar,
// since mkimage refuses to write them.

const (
	busybox   = "/bin/busybox" // busybox-static: the one program of every test image
	httpdPort = 8080           // where the httpd image listens in the node
	indexBody = "hi\n"         // its /index.html
	bigBytes  = 16 << 20       // the big image's random payload: seconds through QEMU's user network
	manyFiles = 3000           // the many-files image's files: seconds to unpack under TCG
)

// images are the files of the images TestApps pushes.
type images struct {
	httpd   string // busybox httpd on httpdPort, logging a start line and each request
	big     string // bigBytes of random data, uncompressed: a slow upload
	many    string // manyFiles small files, gzipped: a quick upload and a slow unpack
	killer  string // as root, kill -9 -1, then sleeps
	bomb    string // forks for ever, under pids max 64; open files 100000 (above the kernel's default hard limit)
	hog     string // eats memory for ever, under a 32 MiB limit
	hostile []hostileImage
}

// hostileImage is an archive the node must refuse, and what its refusal
// must name.
type hostileImage struct {
	file   string
	entry  string // the entry the refusal names
	reason string // and the reason it gives
}

// buildImages makes every image TestApps pushes, in dir.
func buildImages(tb testing.TB, e env, dir string) images {
	tb.Helper()
	if _, err := os.Stat(busybox); err != nil {
		tb.Skipf("QEMU tier: TestApps needs %s (apt-get install busybox-static): %v", busybox, err)
	}
	im := images{
		httpd:  filepath.Join(dir, "httpd.txz"),
		big:    filepath.Join(dir, "big.tar"),
		many:   filepath.Join(dir, "many.tgz"),
		killer: filepath.Join(dir, "killer.txz"),
		bomb:   filepath.Join(dir, "bomb.txz"),
		hog:    filepath.Join(dir, "hog.txz"),
	}
	web := busyboxRoot(tb, filepath.Join(dir, "httpd-root"))
	writeFile(tb, filepath.Join(web, "www", "index.html"), indexBody)
	pack(tb, e, web, im.httpd, "--user", "nobody", "--ready-tcp", fmt.Sprint(httpdPort), "--cmd",
		fmt.Sprintf(`["/bin/sh", "-c", "echo started; exec %s httpd -f -vv -p %d -h /www"]`, busybox, httpdPort))

	big := busyboxRoot(tb, filepath.Join(dir, "big-root"))
	writeRandom(tb, filepath.Join(big, "data", "blob"), bigBytes)
	pack(tb, e, big, im.big, "--compress", "none", "--cmd", busybox+" sleep 1000000")

	many := busyboxRoot(tb, filepath.Join(dir, "many-root"))
	for i := range manyFiles {
		writeFile(tb, filepath.Join(many, "files", fmt.Sprintf("%02d", i%30), fmt.Sprintf("f%04d", i)), fmt.Sprintf("file %d\n", i))
	}
	pack(tb, e, many, im.many, "--cmd", busybox+" sleep 1000000")

	killer := busyboxRoot(tb, filepath.Join(dir, "killer-root"))
	pack(tb, e, killer, im.killer, "--cmd",
		fmt.Sprintf(`["/bin/sh", "-c", "kill -9 -1; echo survived the kill; read a b c < /proc/self/uid_map; echo uid_map $a $b $c; exec %s sleep 1000000"]`, busybox)) // kill: the shell's own

	bomb := busyboxRoot(tb, filepath.Join(dir, "bomb-root"))
	writeFile(tb, filepath.Join(dir, "bomb.json"), `{"version": 1, "name": "bomb", "command": ["/bin/sh", "-c",
		"echo bombing with $(ulimit -n) files; while :; do /bin/busybox sleep 1000000 & done"],
		"resources": {"pids": 64, "rlimits": {"nofile": 100000}}}`)
	pack(tb, e, bomb, im.bomb, "--manifest", filepath.Join(dir, "bomb.json"))
	hog := busyboxRoot(tb, filepath.Join(dir, "hog-root"))
	writeFile(tb, filepath.Join(dir, "hog.json"), `{"version": 1, "name": "hog", "command": ["/bin/sh", "-c",
		"echo eating; x=$(/bin/busybox yes | /bin/busybox head -c 300000000); echo survived"],
		"resources": {"memory": "32M"}, "restart": {"delay": "1s"}}`)
	pack(tb, e, hog, im.hog, "--manifest", filepath.Join(dir, "hog.json"))

	im.hostile = buildHostile(tb, e, dir)
	return im
}

// busyboxRoot makes a root with a static busybox, /bin/sh, and an
// /etc/passwd and /etc/group that know root and nobody.
func busyboxRoot(tb testing.TB, root string) string {
	tb.Helper()
	b, err := os.ReadFile(busybox)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), b, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.Symlink("busybox", filepath.Join(root, "bin", "sh")); err != nil {
		tb.Fatal(err)
	}
	writeFile(tb, filepath.Join(root, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
	writeFile(tb, filepath.Join(root, "etc", "group"), "root:x:0:\nnogroup:x:65534:\n")
	return root
}

func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// writeRandom writes n incompressible bytes.
func writeRandom(tb testing.TB, path string, n int) {
	tb.Helper()
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{'a', 'l', 'l', 'i', 'u', 'm'}).Read(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// pack runs the real mkimage pack.
func pack(tb testing.TB, e env, dir, out string, flags ...string) {
	tb.Helper()
	args := append([]string{"pack", dir, "-o", out}, flags...)
	line := "mkimage " + strings.Join(args, " ")
	b, err := exec.Command(e.mkimage, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s: %v\n%s", line, err, b)
	}
	tb.Logf("%s:\n%s", line, b)
}

// buildHostile writes archives whose rootfs reaches outside the image,
// each as the node must refuse it. Their manifest.json is a valid one
// from mkimage pack, so that only the entries are wrong; they are gzipped.
func buildHostile(tb testing.TB, e env, dir string) []hostileImage {
	tb.Helper()
	base := busyboxRoot(tb, filepath.Join(dir, "hostile-root"))
	plain := filepath.Join(dir, "hostile-base.tar")
	pack(tb, e, base, plain, "--compress", "none", "--cmd", busybox+" sleep 1000000")
	manifest := tarMember(tb, plain, "manifest.json")

	dirEntry := func(name string) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}
	}
	file := func(name string) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len("evil\n"))}
	}
	link := func(name, target string) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}
	}
	cases := []struct {
		name    string
		entries []*tar.Header
		h       hostileImage
	}{
		{"evil-dotdot", []*tar.Header{dirEntry("rootfs/"), file("rootfs/../../etc/evil")},
			hostileImage{entry: "rootfs/../../etc/evil", reason: "escapes the image"}},
		{"evil-symlink", []*tar.Header{dirEntry("rootfs/"), dirEntry("rootfs/www/"), link("rootfs/www/up", "../../../etc")},
			hostileImage{entry: "rootfs/www/up", reason: "escapes the image"}},
		{"evil-parent", []*tar.Header{dirEntry("rootfs/"), link("rootfs/etc", "/etc"), file("rootfs/etc/evil")},
			hostileImage{entry: "rootfs/etc/evil", reason: "symlink"}},
	}
	var out []hostileImage
	for _, c := range cases {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		write := func(h *tar.Header, body []byte) {
			if err := tw.WriteHeader(h); err != nil {
				tb.Fatalf("%s: %s: %v", c.name, h.Name, err)
			}
			if _, err := tw.Write(body); err != nil {
				tb.Fatalf("%s: %s: %v", c.name, h.Name, err)
			}
		}
		write(&tar.Header{Typeflag: tar.TypeReg, Name: "manifest.json", Mode: 0o644, Size: int64(len(manifest))}, manifest)
		for _, h := range c.entries {
			var body []byte
			if h.Typeflag == tar.TypeReg {
				body = []byte("evil\n")
			}
			write(h, body)
		}
		if err := tw.Close(); err != nil {
			tb.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			tb.Fatal(err)
		}
		c.h.file = filepath.Join(dir, c.name+".tgz")
		if err := os.WriteFile(c.h.file, buf.Bytes(), 0o644); err != nil {
			tb.Fatal(err)
		}
		out = append(out, c.h)
	}
	return out
}

// tarMember reads one member of an uncompressed tar.
func tarMember(tb testing.TB, archive, name string) []byte {
	tb.Helper()
	f, err := os.Open(archive)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			tb.Fatalf("%s: no %s: %v", archive, name, err)
		}
		if h.Name == name || h.Name == "./"+name {
			b, err := io.ReadAll(tr)
			if err != nil {
				tb.Fatal(err)
			}
			return b
		}
	}
}

// fileDigest is "sha256:" and the hex sha256 of a file, as the node
// names the image, and the file's size.
func fileDigest(tb testing.TB, path string) (string, int64) {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		tb.Fatal(err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), n
}
