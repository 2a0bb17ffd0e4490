package child

import (
	"errors"
	"os/exec"

	"golang.org/x/sys/unix"
)

// Starter starts a command and delivers its wait status once, on the
// returned channel. cmd's standard streams and ExtraFiles are *os.File
// or nil, so that os/exec starts no copying goroutines (only Wait, never
// called in PID 1, would end them). When Start returns, cmd.Process.Pid
// must be the child's pid: a Starter does not call cmd.Process.Release
// (it sets Pid to -1).
type Starter interface {
	Start(cmd *exec.Cmd) (<-chan unix.WaitStatus, error)
}

// StarterFunc is a function used as a Starter.
type StarterFunc func(cmd *exec.Cmd) (<-chan unix.WaitStatus, error)

// Start calls f(cmd).
func (f StarterFunc) Start(cmd *exec.Cmd) (<-chan unix.WaitStatus, error) { return f(cmd) }

var (
	// ErrNoStarter: the caller was given no Starter. PID 1 passes its
	// reaper; tests pass testkit.Starter.
	ErrNoStarter = errors.New("no Starter to start a child (PID 1 passes its reaper)")
	// ErrNoPID: the Starter returned without the child's pid in
	// cmd.Process, or with a pid no one may signal (-1 is every process,
	// 1 is PID 1). Retrying would only start more children.
	ErrNoPID = errors.New("the Starter left no pid in cmd.Process (did it call Release?)")
)

// Start starts cmd through s and checks that s kept its contract, so
// that a caller can signal cmd.Process.Pid (and its process group)
// without ever signalling -1 or PID 1.
func Start(s Starter, cmd *exec.Cmd) (<-chan unix.WaitStatus, error) {
	if s == nil {
		return nil, ErrNoStarter
	}
	ch, err := s.Start(cmd)
	if err != nil {
		return nil, err
	}
	if ch == nil || cmd.Process == nil || cmd.Process.Pid <= 1 {
		return nil, ErrNoPID
	}
	return ch, nil
}

// Adopter takes over the waiting on a child this process did not start
// through it: a container's shim handed over by the previous init
// across an execve, which keeps pid 1 and its children. Adopt delivers
// the child's wait status once, on the returned channel, as Start does;
// a child that exited before Adopt (a zombie until reaped) is delivered
// too. It fails when pid is not a child of this process (reaped
// already, or never one), or is one the Adopter already waits for.
type Adopter interface {
	Adopt(pid int) (<-chan unix.WaitStatus, error)
}

// ErrNotChild: Adopt of a pid that is not a child of this process.
var ErrNotChild = errors.New("not a child of this process (reaped already, or never one)")
