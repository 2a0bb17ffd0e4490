package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// sshSession runs commands on one machine with the user's own ssh,
// so that their config, agent, known_hosts and ProxyJump apply. The
// commands share one connection (a control master in a private
// directory), so a password or a host key is asked for once.
type sshSession struct {
	t       sshTarget
	config  string // -F, or ""
	opts    []string
	ctlDir  string
	started bool
}

// sshProgram is the ssh client cloud runs; $CLOUD_SSH overrides it.
func sshProgram() string {
	if p := os.Getenv("CLOUD_SSH"); p != "" {
		return p
	}
	return "ssh"
}

func newSSHSession(t sshTarget, config string, opts []string) (*sshSession, error) {
	if _, err := exec.LookPath(sshProgram()); err != nil {
		return nil, fmt.Errorf("cloud install needs an ssh client: %w", err)
	}
	for _, o := range opts {
		if !strings.Contains(o, "=") || strings.HasPrefix(o, "-") {
			return nil, usagef("--ssh-option %q: want OPTION=VALUE, as ssh -o takes", o)
		}
	}
	dir, err := os.MkdirTemp("", "cloud-ssh-")
	if err != nil {
		return nil, err
	}
	return &sshSession{t: t, config: config, opts: opts, ctlDir: dir}, nil
}

// args are ssh's arguments for a remote command.
func (s *sshSession) args(extra ...string) []string {
	a := []string{
		"-o", "ControlMaster=auto",
		"-o", "ControlPath=" + filepath.Join(s.ctlDir, "%C"),
		"-o", "ControlPersist=120",
		// A connection that stops answering is given up in about 30 s,
		// not at TCP's pace.
		"-o", "ServerAliveInterval=10",
		"-o", "ServerAliveCountMax=3",
	}
	if s.config != "" {
		a = append([]string{"-F", s.config}, a...)
	}
	for _, o := range s.opts {
		a = append(a, "-o", o)
	}
	if s.t.port != "" {
		a = append(a, "-p", s.t.port)
	}
	dest := s.t.host
	if s.t.user != "" {
		dest = s.t.user + "@" + dest
	}
	return append(append(a, extra...), dest)
}

// runInput runs command with stdin from in, its output to stderr.
func (s *sshSession) runInput(ctx context.Context, command string, in io.Reader, stderr io.Writer) error {
	var errb bytes.Buffer
	cmd := exec.CommandContext(ctx, sshProgram(), append(s.args(), "--", command)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, stderr, io.MultiWriter(stderr, &errb)
	s.started = true
	return sshResult(cmd.Run(), errb.String())
}

// run runs command, calling line for each line it prints on stdout and
// copying its stderr to stderr.
func (s *sshSession) run(ctx context.Context, command string, stderr io.Writer, line func(string)) error {
	var errb bytes.Buffer
	cmd := exec.CommandContext(ctx, sshProgram(), append(s.args(), "--", command)...)
	cmd.Stderr = io.MultiWriter(stderr, &errb)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	s.started = true
	if err := cmd.Start(); err != nil {
		return err
	}
	scanLines(out, line)
	return sshResult(cmd.Wait(), errb.String())
}

func sshResult(err error, stderr string) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &sshExit{code: ee.ExitCode(), stderr: stderr}
	}
	return err
}

// hostname is the address ssh connects to: HostName from the user's
// config for a Host alias (ssh -G), else the host as given.
func (s *sshSession) hostname() string {
	out, err := exec.Command(sshProgram(), append([]string{"-G"}, s.args()...)...).Output()
	if err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if h, ok := strings.CutPrefix(l, "hostname "); ok && h != "" {
				return strings.TrimSpace(h)
			}
		}
	}
	return s.t.host
}

// close stops the control master and removes its directory.
func (s *sshSession) close() {
	if s.started {
		exec.Command(sshProgram(), append([]string{"-O", "exit"}, s.args()...)...).Run()
	}
	os.RemoveAll(s.ctlDir)
}
