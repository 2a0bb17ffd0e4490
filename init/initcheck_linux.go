package main

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"allium/api"
	"allium/internal/child"
	"allium/internal/safe"
)

// Checking a new init before the node trusts it. Each check names what
// was wrong; the caller removes the file.
//
//	PID 1: initChecker.check(PATH)                  PATH version --json
//	ELF header: machine, class, type, PT_INTERP,
//	segments within the file
//	pipe() ─────────────────────── fd 1, fd 2 ────> one JSON object (InitVersion)
//	child.Start(reaper, PATH version --json)        (stdin /dev/null, empty env,
//	  own process group, SIGKILL if PID 1's thread   cwd /)
//	  dies)
//	read ≤ maxVersionOutput <───────────────────── exit 0
//	deadline: SIGKILL the group, "did not answer within"
//	reaper: wait status ─> parse and compare with the running init's

// initChecker checks inits. Its zero value is not usable: Starter and
// Want are required.
type initChecker struct {
	// Starter starts the init's `version --json`: PID 1's reaper
	// (tests: testkit.Starter).
	Starter child.Starter
	// Want is the running init's ELF machine and class (elfOf
	// /proc/self/exe).
	Want elfIdent
	// Self is the running init's InitVersion.
	Self api.InitVersion
	// Timeout bounds `version --json`; 0 means versionTimeout.
	Timeout time.Duration
	// Log receives a panic of the goroutine that reads the output; nil
	// means slog.Default().
	Log *slog.Logger
}

// versionTimeout is how long a new init may take to say its version.
const versionTimeout = 10 * time.Second

// maxVersionOutput caps what `version --json` may print.
const maxVersionOutput = 64 << 10

// elfIdent is what makes an ELF run on a machine.
type elfIdent struct {
	Machine elf.Machine
	Class   elf.Class
}

func (e elfIdent) String() string {
	bits := map[elf.Class]string{elf.ELFCLASS32: "32-bit", elf.ELFCLASS64: "64-bit"}[e.Class]
	return strings.TrimPrefix(e.Machine.String(), "EM_") + " " + bits
}

// elfOf reads the ELF identity of the binary at path: /proc/self/exe
// for the running init.
func elfOf(path string) (elfIdent, error) {
	f, err := elf.Open(path)
	if err != nil {
		return elfIdent{}, err
	}
	defer f.Close()
	return elfIdent{f.Machine, f.Class}, nil
}

// check checks the init at path and returns what it says of itself.
func (c initChecker) check(ctx context.Context, path string) (api.InitVersion, error) {
	if err := checkELF(path, c.Want); err != nil {
		return api.InitVersion{}, err
	}
	out, ws, err := c.run(ctx, path)
	if err != nil {
		return api.InitVersion{}, err
	}
	v, err := parseVersion(out, ws)
	if err != nil {
		return api.InitVersion{}, err
	}
	return v, c.compatible(v)
}

// checkELF refuses what is not a complete, static ELF executable for
// the machine want.
func checkELF(path string, want elfIdent) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	e, err := elf.NewFile(f)
	if err != nil {
		magic := make([]byte, len(elf.ELFMAG))
		if _, rerr := f.ReadAt(magic, 0); rerr == nil && string(magic) == elf.ELFMAG {
			return fmt.Errorf("a truncated or damaged ELF (%v)", err)
		}
		return fmt.Errorf("not an ELF executable (%v)", err)
	}
	got := elfIdent{e.Machine, e.Class}
	switch {
	case got != want:
		return fmt.Errorf("an ELF for %v, and this node runs %v: build it with GOARCH for this node", got, want)
	case e.Type != elf.ET_EXEC && e.Type != elf.ET_DYN:
		return fmt.Errorf("an ELF of type %v, not an executable", e.Type)
	}
	for _, p := range e.Progs {
		if p.Type == elf.PT_INTERP {
			interp, _ := io.ReadAll(io.LimitReader(p.Open(), 256))
			return fmt.Errorf("dynamically linked (it asks for the loader %s); an init must be static: build it with CGO_ENABLED=0",
				strings.TrimRight(string(interp), "\x00"))
		}
		if end := p.Off + p.Filesz; p.Filesz > 0 && end > uint64(fi.Size()) {
			return fmt.Errorf("truncated: a segment of it ends at byte %d, past its end at %d", end, fi.Size())
		}
	}
	return nil
}

// run runs path version --json through the Starter and returns its
// output and wait status.
func (c initChecker) run(ctx context.Context, path string) ([]byte, unix.WaitStatus, error) {
	timeout := c.Timeout
	if timeout == 0 {
		timeout = versionTimeout
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	cmd, status, err := startRetrying(c.Starter, path, w)
	w.Close() // the child has its copy; ours would keep the pipe open
	if err != nil {
		return nil, 0, fmt.Errorf("cannot run it: %w", err)
	}
	r.SetReadDeadline(time.Now().Add(timeout)) // a grandchild that keeps the pipe cannot hold us
	out := make(chan []byte, 2)                // the output, then the deferred nil
	safe.Go(c.Log, "init check: version output", func() {
		defer func() { out <- nil }()
		b, _ := io.ReadAll(io.LimitReader(r, maxVersionOutput+1))
		r.Close() // more than the cap: its next write fails
		out <- b
	})
	t := time.NewTimer(timeout)
	defer t.Stop()
	var ws unix.WaitStatus
	select {
	case ws = <-status:
	case <-t.C:
		unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		<-status
		return nil, 0, fmt.Errorf("`version --json` did not answer within %v (killed)", timeout)
	case <-ctx.Done():
		unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		<-status
		return nil, 0, ctx.Err()
	}
	unix.Kill(-cmd.Process.Pid, unix.SIGKILL) // what it left behind in its group
	b := <-out
	if len(b) > maxVersionOutput {
		return nil, 0, fmt.Errorf("`version --json` printed more than %d bytes", maxVersionOutput)
	}
	return b, ws, nil
}

// versionCommand is path version --json with out as its stdout and
// stderr, stdin /dev/null, an empty environment, in a process group of
// its own, killed if the thread that starts it dies. Its argv[0] is
// "init": a binary called otherwise may act as a power command.
func versionCommand(path string, out *os.File) *exec.Cmd {
	return &exec.Cmd{
		Path: path, Args: []string{"init", "version", "--json"},
		Env: []string{}, Dir: "/", Stdout: out, Stderr: out,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	}
}

// startRetrying starts versionCommand(path, out) through s. ETXTBSY means a child forked
// elsewhere in PID 1 still holds the file open for writing, until its
// own exec closes it: try again a few times.
func startRetrying(s child.Starter, path string, out *os.File) (*exec.Cmd, <-chan unix.WaitStatus, error) {
	for i := 0; ; i++ {
		cmd := versionCommand(path, out)
		ch, err := child.Start(s, cmd)
		if !errors.Is(err, unix.ETXTBSY) || i == 10 {
			return cmd, ch, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// parseVersion reads what `version --json` printed and how it ended.
func parseVersion(out []byte, ws unix.WaitStatus) (api.InitVersion, error) {
	var v api.InitVersion
	switch {
	case ws.Signaled():
		return v, fmt.Errorf("`version --json` was killed by %s", unix.SignalName(ws.Signal()))
	case ws.ExitStatus() != 0:
		return v, fmt.Errorf("`version --json` exited with status %d (%.200q): is it an Allium init of this version or later?", ws.ExitStatus(), bytes.TrimSpace(out))
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return v, fmt.Errorf("`version --json` printed no version JSON (%.200q): %v", bytes.TrimSpace(out), err)
	}
	return v, nil
}

// compatible refuses an init that could not take over from this one.
func (c initChecker) compatible(v api.InitVersion) error {
	switch {
	case v.Version == "":
		return errors.New("`version --json` says no version")
	case v.StateSchema < 1:
		return fmt.Errorf("`version --json` says state schema %d; want at least 1", v.StateSchema)
	case v.StateSchema < c.Self.StateSchema:
		return fmt.Errorf("init %s understands state schema %d, older than this node's state.db (schema %d): it could not open it",
			v.Version, v.StateSchema, c.Self.StateSchema)
	case v.Handover != c.Self.Handover:
		return fmt.Errorf("init %s speaks handover protocol %d, and this node's init %s speaks %d: it cannot take over in place",
			v.Version, v.Handover, c.Self.Version, c.Self.Handover)
	case v.Arch != c.Self.Arch:
		return fmt.Errorf("init %s says it is for %s, and this node runs %s", v.Version, v.Arch, c.Self.Arch)
	}
	return nil
}
