package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"allium/internal/testkit"
)

// nobody is the uid and gid the refused half of the unix socket test
// dials as.
const nobody = 65534

// serveUnix serves a fresh server on a unix socket in dir and returns
// the socket's path.
func serveUnix(t *testing.T, dir string, b Backend) string {
	t.Helper()
	srv, err := NewServer(b, newKey(t), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "allium.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeUnix(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("ServeUnix() = %v, want nil after Shutdown", err)
		}
	})
	return path
}

// TestUnixSocketServesRootOnly dials from this process: root is served,
// anyone else refused by uid.
func TestUnixSocketServesRootOnly(t *testing.T) {
	b := &fakeBackend{node: Node{Name: "web1"}}
	c := NewUnixClient(serveUnix(t, t.TempDir(), b))
	n, err := c.Node(t.Context())
	if uid := os.Geteuid(); uid != 0 {
		var e *Error
		want := fmt.Sprintf("not uid %d", uid)
		if !errors.As(err, &e) || e.Status != http.StatusUnauthorized || !strings.Contains(e.Message, want) {
			t.Errorf("Node() over the unix socket as uid %d = %v, want a 401 saying %q", uid, err, want)
		}
		t.Skip("not root: checked that uid", uid, "is refused; run as root to check that uid 0 is served")
	}
	if err != nil || n.Name != "web1" {
		t.Errorf("Node() over the unix socket as root = %+v, %v, want the backend's node", n, err)
	}
}

// TestUnixSocketRefusesOtherUID dials from a child process running as
// nobody, which needs root to start.
func TestUnixSocketRefusesOtherUID(t *testing.T) {
	testkit.NeedRoot(t)
	dir := worldReadableDir(t)
	b := &fakeBackend{node: Node{Name: "web1"}}
	sock := serveUnix(t, dir, b)
	if err := os.Chmod(sock, 0o777); err != nil {
		t.Fatal(err)
	}
	out := dialAsNobody(t, dir, sock)
	want := fmt.Sprintf("401 unauthorized: the unix socket serves root only, not uid %d", nobody)
	if out != want {
		t.Errorf("the child running as uid %d reported %q, want %q", nobody, out, want)
	}
	if b.nodes.Load() != 0 {
		t.Errorf("the refused uid reached the backend %d times", b.nodes.Load())
	}
}

// worldReadableDir is a temporary directory nobody can enter, whose
// parents are too (t.TempDir's are 0700).
func worldReadableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "allium-unix-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// dialAsNobody copies this test binary where nobody can run it, runs its
// TestUnixChild as nobody against sock, and returns what it printed.
func dialAsNobody(t *testing.T, dir, sock string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "api.test")
	if err := copyFile(self, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), bin, "-test.run=^TestUnixChild$", "-test.v=false")
	cmd.Env = append(os.Environ(), "ALLIUM_TEST_UNIX_CHILD="+sock)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s as uid %d: %v\n%s", bin, nobody, err, out)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimPrefix(line, "child: ")
}

func copyFile(from, to string, perm os.FileMode) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// TestUnixChild is not a test: it is the child of
// TestUnixSocketRefusesOtherUID, and prints what the socket answered.
func TestUnixChild(t *testing.T) {
	sock := os.Getenv("ALLIUM_TEST_UNIX_CHILD")
	if sock == "" {
		t.Skip("the child half of TestUnixSocketRefusesOtherUID")
	}
	_, err := NewUnixClient(sock).Node(context.Background())
	var e *Error
	switch {
	case err == nil:
		fmt.Println("child: served")
	case errors.As(err, &e):
		fmt.Printf("child: %d %s: %s\n", e.Status, e.Code, e.Message)
	default:
		fmt.Printf("child: %v\n", err)
	}
}
