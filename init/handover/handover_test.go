package handover

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The two halves of TestAcrossExec run in a child of the test: the old
// init's side writes a Doc and a pipe's read end and execs the test
// binary again as the new init's side, which reads them.
const sideEnv = "HANDOVER_TEST_SIDE"

func TestMain(m *testing.M) {
	switch os.Getenv(sideEnv) {
	case "old":
		oldSide()
	case "new":
		newSide()
	}
	os.Exit(m.Run())
}

func oldSide() {
	r, w, err := os.Pipe()
	if err != nil {
		die(err)
	}
	files, _, err := Pass([]*os.File{r})
	if err != nil {
		die(err)
	}
	w.Write([]byte("written before the execve\n"))
	w.Close()
	doc, err := Write(Doc{From: "v1", To: "v2", Booted: time.Unix(1700000000, 0), BootCount: 7,
		Listeners: []Listener{{Network: "tcp", Addr: ":7707", File: 0}}, Files: files})
	if err != nil {
		die(err)
	}
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, sideEnv+"=") {
			env = append(env, e)
		}
	}
	env = append(env, sideEnv+"=new", EnvValue(doc))
	die(syscall.Exec("/proc/self/exe", []string{os.Args[0]}, env))
}

func newSide() {
	d, err := FromEnv()
	if err != nil {
		die(err)
	}
	if os.Getenv(Env) != "" {
		die(io.ErrUnexpectedEOF)
	}
	f, err := d.File(d.Listeners[0].File)
	if err != nil {
		die(err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		die(err)
	}
	os.Stdout.WriteString(d.From + "->" + d.To + " boot " + string(rune('0'+d.BootCount)) + ": " + string(b))
	os.Exit(0)
}

func die(err error) {
	os.Stderr.WriteString(err.Error() + "\n")
	os.Exit(3)
}

// A Doc and a descriptor cross a real execve at the numbers they had.
func TestAcrossExec(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), sideEnv+"=old")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || string(out) != "v1->v2 boot 7: written before the execve\n" {
		t.Errorf("across the execve: %v, %q, stderr %q; want the Doc and the pipe's line", err, out, stderr.String())
	}
}

func TestFromEnvNone(t *testing.T) {
	os.Unsetenv(Env)
	if _, err := FromEnv(); err != ErrNone {
		t.Errorf("FromEnv() without %s = %v, want ErrNone", Env, err)
	}
	t.Setenv(Env, "1")
	if _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), "not a descriptor") {
		t.Errorf("FromEnv() with %s=1 = %v, want a refusal", Env, err)
	}
}

func TestReadChecks(t *testing.T) {
	for _, tc := range []struct {
		doc, want string
	}{
		{`{"version": 2, "files": []}`, "protocol 2, this init speaks 1"},
		{`{"version": 1, "files": [{"fd": 2}]}`, "files[0]: fd 2"},
		{`{"version": 1, "files": [{"fd": 5}, {"fd": 5}]}`, "files[1]: fd 5"},
		{`{"version": 1, "files": [], "listeners": [{"network": "tcp", "addr": ":1", "file": 0}]}`, "listeners[0] (tcp :1): file 0 of 0"},
		{`{"version": 1, "files": [{"fd": 5}], "listeners": [{"network": "udp", "file": 0}]}`, `network "udp"`},
		{`{"version": 1`, "unexpected end of JSON"},
	} {
		_, err := Read(strings.NewReader(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Read(%s) = %v, want %q", tc.doc, err, tc.want)
		}
	}
	d, err := Read(strings.NewReader(`{"version": 1, "files": [{"fd": 5, "name": "x"}], "listeners": [{"network": "unix", "addr": "/run/allium.sock", "file": 0}]}`))
	if err != nil || len(d.Listeners) != 1 {
		t.Errorf("Read(a good Doc) = %+v, %v", d, err)
	}
}

func FuzzRead(f *testing.F) {
	good, _ := json.Marshal(Doc{Version: Version, Files: []File{{FD: 4}}, Listeners: []Listener{{Network: "tcp", File: 0}}})
	f.Add(good)
	f.Add([]byte(`{"version": 1, "files": null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Read(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, l := range d.Listeners {
			if l.File < 0 || l.File >= len(d.Files) {
				t.Fatalf("Read accepted a listener's file %d of %d", l.File, len(d.Files))
			}
		}
	})
}

// Pass leaves the originals as they were: non-blocking, with
// read deadlines working, and close-on-exec on.
func TestPass(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	files, drop, err := Pass([]*os.File{r})
	if err != nil {
		t.Fatal(err)
	}
	fd := files[0].FD
	if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC != 0 {
		t.Errorf("the copy's fd flags = %#x, %v; want close-on-exec off", flags, err)
	}
	r.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a read of the original with a deadline = %v, want it to time out", err)
	}
	drop()
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
		t.Errorf("the copy (fd %d) is still open after drop", fd)
	}
}
