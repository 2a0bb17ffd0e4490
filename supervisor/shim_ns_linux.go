package supervisor

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"allium/internal/safe"

	"golang.org/x/sys/unix"
)

// At the namespaces rung the shim is the container's PID 1 and stays
// (nsInit): it mounts the container's filesystem under the root
// (shim_mount_linux.go), sets the hostname, makes itself non-dumpable,
// then starts the inner shim: its own binary again, as the container's
// second process (its pid is not 2: the shim's threads took the first
// ones), in a session of its own. The inner shim runs the chroot rung's
// steps with pivot_root in place of chroot (rlimits, no_new_privs,
// bounding set, credentials, inheritable set) and execs the workload,
// which keeps its pid. So the workload's privileges are the chroot rung's
// by construction, and the shim, a Go program that keeps running,
// takes none of the workload's rlimits (an address-space limit would
// starve its runtime). The inner shim starts before pivot_root, while
// the node's binary, and its ELF interpreter if it has one (a test
// binary), can still be found; its pivot_root moves the shim's root and
// working directory (both the node's /) along with its own.
//
//	shim, pid 1 inside                      inner shim, pid N           workload
//	chdir /, mounts under the root,
//	  sethostname, not dumpable
//	private network only: read the network
//	  gate (ALLIUM_SHIM_NET_FD) until PID 1
//	  has attached the namespace's veth
//	  and writes one byte (EOF: it could
//	  not, and has killed the shim)
//	pipe: inner status (close-on-exec)
//	fork/exec /proc/self/exe ─────────────► ALLIUM_SHIM_SPEC={...,"inner":true}
//	  (setsid; fd 0-2, the readiness fd       status at the same fd as the
//	  and the inner status fd passed on)      shim's; pivot_root(root),
//	read inner status ...                     chdir(workdir), rlimits,
//	                                          privileges, credentials
//	                                          execve ─────────────────► same pid N
//	... EOF, nothing read ◄────────────────── (closed by the exec)
//	close the status pipe to PID 1 (EOF: the workload runs)
//	... "message", EOF ◄───────────────────── exit ExitShim* / 126 / 127
//	write it to PID 1, wait, exit with the same code
//
//	then, until pid N exits:
//	  every signal but SIGCHLD and SIGURG ──kill(-N, sig)──► the workload's group
//	  wait4(-1): reap orphans of the namespace
//	  pid N exited: exit with its code, or 128+signal
//
// The supervisor's stop signal to the shim's process group reaches the
// shim alone (the workload has its own session), and the shim forwards
// it once to the workload's group. A SIGKILL of the shim ends the pid
// namespace: the kernel kills everything in it. When the shim exits, the
// same happens to what is left. A signal the workload sends to pid 1
// is forwarded back to its own group, as if sent to it.
//
// The shim keeps root's privileges: it needs none after the setup, but
// the workload cannot reach them. It is not dumpable, so neither ptrace
// nor /proc/1/{exe,mem,fd,root} open to a workload without
// CAP_SYS_PTRACE, which no bounding set here has.
//
// A workload killed by a signal cannot be mirrored: PID 1 of a pid
// namespace gets no signal it has no handler for from inside its
// namespace, SIGKILL included, so the shim cannot kill itself with the
// workload's signal. It exits 128+signal, as a shell does: the
// supervisor sees "exit 137", not "killed by SIGKILL". A SIGKILL from
// the supervisor (the stop's escalation) kills the shim itself and
// shows as SIGKILL.

// nsInit is the shim at the namespaces rung, from setup to the
// workload's exit; it returns the shim's exit code.
func nsInit(cfg *shimConfig, status *os.File) int {
	if err := resetIgnoredSignals(cfg); err != nil {
		return shimFail(status, ExitShimPrivileges, err)
	}
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs) // now: a stop during the setup is forwarded once the workload runs
	for _, step := range nsSteps {
		if err := step.f(cfg); err != nil {
			return shimFail(status, step.code, err)
		}
	}
	if err := awaitNetwork(os.Getenv(ShimNetEnv)); err != nil {
		return shimFail(status, ExitShimPrivileges, err)
	}
	start := startDirect
	if len(cfg.Rlimits) != 0 {
		start = startInner
	}
	pid, code, err := start(cfg, status)
	switch {
	case err != nil:
		return shimFail(status, code, err)
	case pid == 0:
		return code // the inner shim failed and said why
	}
	// In the shim's process, not PID 1's; a panic is logged to the
	// container's log and forwarding stops, the workload runs on.
	safe.Go(slog.New(slog.NewTextHandler(os.Stderr, nil)), "allium shim: forward signals", func() { forward(sigs, pid) })
	return reap(pid)
}

// awaitNetwork waits, for a private network, for PID 1's go-ahead on
// the network gate (env, the descriptor's number): one byte once the
// run's network namespace has its veth, address and route. Without a
// gate (env "") there is nothing to wait for. EOF without the byte
// means PID 1 could not attach the network; it has killed the shim
// already (see the supervisor's attach), so this is a last resort.
func awaitNetwork(env string) error {
	if env == "" {
		return nil
	}
	fd, err := strconv.Atoi(env)
	if err != nil || fd < 3 {
		return fmt.Errorf("network gate: bad descriptor %q", env)
	}
	unix.CloseOnExec(fd) // never the inner shim's or the workload's
	gate := os.NewFile(uintptr(fd), "network gate")
	defer gate.Close()
	var b [1]byte
	if n, _ := gate.Read(b[:]); n != 1 {
		return errors.New("network gate: closed without the go-ahead: the node could not attach the network")
	}
	return nil
}

// nsSteps set the namespaces up, in order, before the inner shim.
var nsSteps = []struct {
	code int
	f    func(*shimConfig) error
}{
	{ExitShimRoot, func(cfg *shimConfig) error { return setupRoot(cfg.Root) }},
	// The node's / as working directory: pivot_root moves it into the
	// container, where any other would hold on to the node's files.
	{ExitShimRoot, func(*shimConfig) error { return os.NewSyscallError("chdir /", unix.Chdir("/")) }},
	{ExitShimRoot, setHostname},
	// Non-dumpable: a root workload cannot open /proc/1/exe, the node's
	// init binary, nor ptrace the shim (runc's CVE-2019-5736).
	{ExitShimPrivileges, func(*shimConfig) error {
		return os.NewSyscallError("prctl(PR_SET_DUMPABLE)", unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0))
	}},
}

func setHostname(cfg *shimConfig) error {
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		return fmt.Errorf("sethostname %q: %w", cfg.Hostname, os.NewSyscallError("sethostname", err))
	}
	return nil
}

// startDirect starts the workload without an inner shim, where it
// needs no rlimits (they are per process: set in the shim, they would
// bind its Go runtime too). The shim pivots into the root itself (it
// needs nothing of the node's files after this), then gives the thread
// that forks, the one ShimMain locked, what the workload must inherit
// and the shim may keep: no_new_privs, the bounding set, an empty
// ambient and inheritable set. These are the thread's own, not the
// process's, and the thread's effective capabilities stay, so the
// fork's child can still change its credentials. Go's ForkExec then
// makes the child a session leader, sets its groups, gid and uid, and
// execs the workload: one exec fewer than the inner shim's way, the
// largest part of a start at this rung. An error before the exec comes
// back from ForkExec itself.
func startDirect(cfg *shimConfig, status *os.File) (pid, code int, err error) {
	if err := pivot(cfg.Root); err != nil {
		return 0, ExitShimRoot, err
	}
	if err := unix.Chdir(cfg.Workdir); err != nil {
		return 0, ExitShimRoot, &os.PathError{Op: "chdir to workdir", Path: cfg.Workdir, Err: err}
	}
	argv0, err := lookPath(cfg.Command[0], pathOf(cfg.Env))
	if err != nil {
		return 0, ExitNotFound, err
	}
	for _, step := range []func(*shimConfig) error{setNoNewPrivs, dropBoundingSet, clearInheritable} {
		if err := step(cfg); err != nil {
			return 0, ExitShimPrivileges, err
		}
	}
	pid, err = syscall.ForkExec(argv0, cfg.Command, &syscall.ProcAttr{Env: cfg.Env, Files: childFiles(cfg, 0),
		Sys: &syscall.SysProcAttr{Setsid: true, Credential: &syscall.Credential{Uid: cfg.UID, Gid: cfg.GID, Groups: cfg.Groups}}})
	if err != nil {
		code, err = execFailure(argv0, err)
		return 0, code, err
	}
	if cfg.ReadyFD != 0 {
		unix.Close(cfg.ReadyFD) // the workload has it; its close must reach PID 1
	}
	if status != nil {
		status.Close() // EOF: the workload runs
	}
	return pid, 0, nil
}

// startInner starts the inner shim and relays its status. It returns
// the inner shim's pid once the workload runs; or pid 0 and the exit
// code once the inner shim has failed and the message has been passed
// on to PID 1; or an error of its own start.
func startInner(cfg *shimConfig, status *os.File) (pid, code int, err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, ExitShimUsage, fmt.Errorf("inner status pipe: %w", err)
	}
	defer r.Close()
	statusFD := 3
	if status != nil {
		statusFD = int(status.Fd())
	}
	pid, err = syscall.ForkExec("/proc/self/exe", []string{"init", "shim"}, innerAttr(cfg, w, statusFD))
	w.Close()
	if err != nil {
		return 0, ExitCannotExec, fmt.Errorf("start the inner shim: %w", err)
	}
	if cfg.ReadyFD != 0 {
		unix.Close(cfg.ReadyFD) // the workload has it; its close must reach PID 1
	}
	msg, _ := io.ReadAll(io.LimitReader(r, 4<<10))
	if len(msg) == 0 {
		if status != nil {
			status.Close() // EOF: the workload runs
		}
		return pid, 0, nil
	}
	if status != nil {
		status.Write(msg)
		status.Close()
	}
	return 0, exitCode(waitPID(pid)), nil
}

// innerAttr is how the inner shim starts: in a session of its own, with
// the shim's stdio and readiness descriptor, its status pipe where the
// shim's is, and its config with Inner set.
func innerAttr(cfg *shimConfig, status *os.File, statusFD int) *syscall.ProcAttr {
	files := childFiles(cfg, statusFD)
	files[statusFD] = status.Fd()
	inner := *cfg
	inner.Inner = true
	env := []string{ShimSpecEnv + "=" + shimJSON(&inner), ShimStatusEnv + "=" + strconv.Itoa(statusFD)}
	return &syscall.ProcAttr{Env: env, Files: files, Sys: &syscall.SysProcAttr{Setsid: true}}
}

// childFiles are the descriptors the shim's child gets: stdio, the
// readiness descriptor at its number, and room up to upTo for one more;
// every other number below them is closed in the child.
func childFiles(cfg *shimConfig, upTo int) []uintptr {
	files := []uintptr{0, 1, 2}
	for len(files) <= max(upTo, cfg.ReadyFD) {
		files = append(files, ^uintptr(0))
	}
	if cfg.ReadyFD != 0 {
		files[cfg.ReadyFD] = uintptr(cfg.ReadyFD)
	}
	return files
}

// forward sends every signal the shim gets to the workload's process
// group, but SIGCHLD (reap's business) and SIGURG (the Go runtime's
// preemption: not forwarded, so a SIGURG sent to the container is
// lost). ESRCH: the group is gone, its exit on the way.
func forward(sigs <-chan os.Signal, pid int) {
	for s := range sigs {
		sig := s.(syscall.Signal)
		if sig == unix.SIGCHLD || sig == unix.SIGURG {
			continue
		}
		unix.Kill(-pid, sig)
	}
}

// reap waits for every child in the namespace (orphans are reparented
// to the shim) until pid, the workload, exits, and returns its exit
// code.
func reap(pid int) int {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		switch {
		case errors.Is(err, unix.EINTR):
		case err != nil: // ECHILD: the workload is gone without a status
			fmt.Fprintf(os.Stderr, "allium shim: wait4: %v\n", err)
			return ExitShimPrivileges
		case got == pid:
			return exitCode(ws)
		}
	}
}

// waitPID waits for pid alone.
func waitPID(pid int) unix.WaitStatus {
	var ws unix.WaitStatus
	for {
		if _, err := unix.Wait4(pid, &ws, 0, nil); !errors.Is(err, unix.EINTR) {
			return ws
		}
	}
}

// exitCode is the shim's exit code for the workload's wait status: its
// exit code, or 128+signal when a signal killed it.
func exitCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
