package hiddenservice

import (
	"context"
	"crypto/ecdh"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"allium/internal/testkit"

	"allium/internal/child"
	"allium/supervisor/restart"

	"golang.org/x/sys/unix"

	"allium/internal/tornet"
)

func TestCommand(t *testing.T) {
	out := os.Stderr
	p, err := NewProcess(Options{
		Config:  Config{DataDir: "/d/tor", ControlSocket: "/r/ctl"},
		Starter: child.StarterFunc(func(*exec.Cmd) (<-chan unix.WaitStatus, error) { return nil, nil }),
		Stdout:  out,
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := p.Command()
	if cmd.Path != DefaultExe || !slices.Equal(cmd.Args, []string{DefaultExe, "-f", "/r/torrc", "--defaults-torrc", "/dev/null"}) {
		t.Errorf("Command() = %s %q", cmd.Path, cmd.Args)
	}
	if !slices.Equal(cmd.Env, []string{"HOME=/d/tor"}) || cmd.Dir != "/" {
		t.Errorf("Command() env %q, dir %q, want HOME only and /", cmd.Env, cmd.Dir)
	}
	if want := (&syscall.SysProcAttr{Setsid: true}); !reflect.DeepEqual(cmd.SysProcAttr, want) {
		t.Errorf("Command().SysProcAttr = %+v, want %+v", cmd.SysProcAttr, want)
	}
	if cmd.Stdout != out || cmd.Stderr != out || cmd.Stdin != nil {
		t.Errorf("Command() stdio = %v %v %v, want nil, Stdout, Stdout", cmd.Stdin, cmd.Stdout, cmd.Stderr)
	}
}

func TestPrepare(t *testing.T) {
	dir := t.TempDir()
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{DataDir: filepath.Join(dir, "data"), ControlSocket: filepath.Join(dir, "run", "control"), User: me.Username}
	p, _ := NewProcess(Options{Config: cfg, Starter: child.StarterFunc(func(*exec.Cmd) (<-chan unix.WaitStatus, error) { return nil, nil })})
	os.MkdirAll(cfg.RunDir(), 0o755)
	os.WriteFile(cfg.ControlSocket, nil, 0o600) // stale socket
	if err := p.Prepare(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{cfg.DataDir, cfg.RunDir()} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, %v, want 0700", d, fi.Mode(), err)
		}
	}
	if _, err := os.Stat(cfg.ControlSocket); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale control socket still there: %v", err)
	}
	rc, _ := os.ReadFile(cfg.TorrcPath())
	want, _ := cfg.Torrc()
	if string(rc) != want {
		t.Errorf("torrc =\n%s\nwant\n%s", rc, want)
	}
	cfg.User = "no-such-user-allium"
	p, _ = NewProcess(Options{Config: cfg, Starter: child.StarterFunc(func(*exec.Cmd) (<-chan unix.WaitStatus, error) { return nil, nil })})
	if err := p.Prepare(); err == nil || !strings.Contains(err.Error(), "/etc/passwd") {
		t.Errorf("Prepare with an unknown user = %v", err)
	}
}

// A missing tor binary is reported in words and retried with backoff
// for ever; five failures in a row are a crash loop.
func TestRunMissingBinary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		starts := 0
		p, err := NewProcess(Options{
			Config: Config{DataDir: filepath.Join(dir, "data"), ControlSocket: filepath.Join(dir, "run", "control")},
			Exe:    "/nonexistent/tor",
			Starter: child.StarterFunc(func(cmd *exec.Cmd) (<-chan unix.WaitStatus, error) {
				starts++
				return nil, &fs.PathError{Op: "fork/exec", Path: cmd.Path, Err: syscall.ENOENT}
			}),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- p.Run(ctx) }()
		synctest.Wait()
		st := p.Status()
		if st.State != StateBackoff || !strings.Contains(st.LastError, "tor binary not found at /nonexistent/tor") || st.PID != 0 {
			t.Errorf("Status() = %+v, want backoff and the missing binary named", st)
		}
		time.Sleep(15*time.Second - time.Millisecond) // 1+2+4+8 s: 4 retries
		synctest.Wait()
		if starts != 4 || p.Status().State != StateBackoff {
			t.Errorf("after 15 s: %d starts, %s; want 4, backoff", starts, p.Status().State)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if starts != 5 || p.Status().State != StateCrashLoop {
			t.Errorf("after the 5th failure: %d starts, %s; want 5, crashloop", starts, p.Status().State)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) || p.Status().State != StateStopped {
			t.Errorf("Run = %v, state %s; want Canceled, stopped", err, p.Status().State)
		}
	})
}

// fakeTorRules answers like a tor that publishes at once.
func fakeTorRules(id string) func(string) []string {
	return func(cmd string) []string {
		verb, _, _ := strings.Cut(cmd, " ")
		switch verb {
		case "PROTOCOLINFO":
			return authRules[0].reply
		case "AUTHENTICATE", "SETEVENTS":
			return []string{"250 OK"}
		case "DEL_ONION":
			return []string{"552 Unknown Onion Service id"}
		case "ADD_ONION":
			return []string{"250-ServiceID=" + id, "250 OK", "650 HS_DESC UPLOADED " + id + " UNKNOWN $AAAA"}
		case "GETINFO":
			if cmd == "GETINFO circuit-status" {
				return []string{"250-circuit-status=", "250 OK"}
			}
			return []string{`250-status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`, "250 OK"}
		}
		return []string{"510 Unrecognized command"}
	}
}

func waitFor(t *testing.T, what string, p *Process, cond func(Status) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(p.Status()) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: status %+v", what, p.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunRestarts runs the supervisor against a stand-in for tor (a
// sleep, with this test's fake control socket): it publishes, publishes
// again after the "tor" is killed, applies a client update, and stops
// the process when its context ends.
func TestRunRestarts(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	dir := t.TempDir()
	cfg := Config{DataDir: filepath.Join(dir, "data"), ControlSocket: filepath.Join(dir, "run", "control")}
	svc, _ := NewService(testOnion(t))
	srv := tornet.NewFakeControl(fakeTorRules(ID(svc.Address())))
	start := func(cmd *exec.Cmd) (<-chan unix.WaitStatus, error) {
		cmd.Path, cmd.Args = sleep, []string{"sleep", "3600"}
		ln, err := net.Listen("unix", cfg.ControlSocket)
		if err != nil {
			t.Fatal(err)
		}
		srv.Serve(ln)
		ch, err := testkit.Starter.Start(cmd)
		if err != nil {
			ln.Close()
			return nil, err
		}
		out := make(chan unix.WaitStatus, 1)
		go func() {
			ws := <-ch
			ln.Close() // the fake tor's control port dies with it
			out <- ws
		}()
		return out, nil
	}
	p, err := NewProcess(Options{Config: cfg, Starter: child.StarterFunc(start), Service: svc, Policy: restart.Policy{Delay: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	waitFor(t, "the first publication", p, func(s Status) bool { return s.Published && s.State == StateRunning && s.Bootstrap == 100 })
	// Regression: a poll interval that ended on the connection's
	// deadline a moment before its context's was taken for a lost
	// connection, and tor was restarted every second.
	time.Sleep(3 * pollInterval)
	if st := p.Status(); st.Starts != 1 || st.State != StateRunning {
		t.Fatalf("after %s of running: %+v, want 1 start, running", 3*pollInterval, st)
	}
	first := p.Status().PID
	syscall.Kill(first, syscall.SIGKILL)
	waitFor(t, "the republication", p, func(s Status) bool { return s.Starts == 2 && s.Published && s.LastExit == "killed by SIGKILL" })
	if adds := srv.Commands("ADD_ONION"); len(adds) != 2 || adds[0] != adds[1] {
		t.Errorf("ADD_ONION commands = %d, want the same one twice", len(adds))
	}
	other, _ := NewClientKey()
	if err := p.UpdateClients([]*ecdh.PublicKey{other.PublicKey()}); err != nil {
		t.Fatal(err)
	}
	want := "ClientAuthV3=" + FormatClientPublicKey(other.PublicKey())
	deadline := time.Now().Add(5 * time.Second)
	for adds := srv.Commands("ADD_ONION"); len(adds) < 3 || !strings.HasSuffix(adds[2], want); adds = srv.Commands("ADD_ONION") {
		if time.Now().After(deadline) {
			t.Fatalf("no ADD_ONION with the new client key: %d ADD_ONIONs", len(adds))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want Canceled", err)
	}
	if st := p.Status(); st.State != StateStopped || st.PID != 0 || st.LastExit != "killed by SIGTERM" {
		t.Errorf("after Run: %+v, want stopped, tor ended by SIGTERM", st)
	}
}
