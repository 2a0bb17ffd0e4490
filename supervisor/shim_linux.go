package supervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"allium/internal/procstatus"
	"allium/supervisor/isolation"

	"golang.org/x/sys/unix"
)

// The shim is PID 1's own binary re-executed as "init shim". It turns
// itself into the workload: everything between fork and the workload's
// first instruction happens here, in a process of its own, so a failure
// costs the shim and never PID 1.
//
//	PID 1 (supervisor)                      shim ("init shim")              workload
//	──────────────────                      ──────────────────              ────────
//	pipe: status, stdout, stderr
//	Starter.Start(cmd) ───fork/exec───────► (new session and process group;
//	  env ALLIUM_SHIM_SPEC={json}            fd 1, 2: the log pipes,
//	  env ALLIUM_SHIM_STATUS_FD=3            fd 3: the status pipe)
//	close its write ends                    status fd: close-on-exec
//	read status pipe ...                    chroot(root), chdir(workdir)
//	                                        mknod /dev/null etc. if missing
//	                                        setrlimit for each limit
//	                                        prctl(NO_NEW_PRIVS)
//	                                        drop the capability bounding set
//	                                        setgroups, setgid, setuid
//	                                        clear inheritable capabilities
//	                                        look up argv[0] in the env's PATH
//	                                        execve ───────────────────────► same pid, same group
//	... EOF with nothing read ◄──────────── (status fd closed by the exec)
//	  = the workload runs: exec event, starting → running (or the
//	    readiness wait begins)
//
//	on any failure before execve:
//	... "message" then EOF ◄─────────────── write the message to the status
//	                                        pipe and to stderr (the log),
//	  = state failed, no restart            exit ExitShim* / 126 / 127
//	wait status ◄──(Starter: PID 1's reaper)───────────────────────────────── exit
//
// At the chroot rung the shim execs the workload directly: no extra
// process sits between PID 1 and the workload, so its pid is the
// container's pid and signals to the process group reach it unchanged.
//
// At the namespaces rung (and, for now, above it) PID 1 starts the
// shim with clone flags for new mount, pid, uts and ipc namespaces
// (Command, sysProcAttr). The shim is then the container's PID 1 and
// stays: the same status pipe protocol holds, seen from PID 1, but the
// steps between fork and execve are split between the shim and an
// inner shim it starts as its child (shim_ns_linux.go has the diagram):
//
//	PID 1 (supervisor)              shim, pid 1 inside            inner shim → workload
//	Starter.Start(cmd, CLONE_NEW*) ► mounts under the root
//	                                 (shim_mount_linux.go),
//	                                 sethostname, not dumpable
//	Network.Attach(pid): veth, ...   (private network: wait on
//	write 1 byte to the gate ──────► the network gate)
//	                                 fork/exec itself ──────────► pivot_root(root), chdir,
//	                                                              rlimits, no_new_privs,
//	                                                              bounding set, credentials
//	                                                              execve: the workload
//	                                 inner status: EOF ◄────────── (closed by the exec)
//	... EOF, nothing read ◄───────── close the status pipe
//	                                 or: message ◄──────────────── exit ExitShim*/126/127
//	... "message", EOF ◄──────────── pass it on, exit with the same code
//	kill(-shim, sig) ──────────────► forward to the workload's group ─► once
//	                                 wait4(-1): reap the namespace's orphans
//	wait status ◄──(reaper)───────── exit with the workload's code, or 128+signal

// The shim's exit codes for failures before the workload runs. 125 is
// not among them: it means "do not restart me" in the workload contract.
const (
	// ExitShimUsage: no or bad config; the shim was not started by the
	// supervisor.
	ExitShimUsage = 121
	// ExitShimRoot: chroot or chdir to the workdir failed.
	ExitShimRoot = 122
	// ExitShimPrivileges: rlimits, no_new_privs, capabilities or
	// credentials could not be set.
	ExitShimPrivileges = 123
	// ExitCannotExec: the command was found but execve failed (as a
	// shell's 126).
	ExitCannotExec = 126
	// ExitNotFound: the command is not in the container (as a shell's
	// 127).
	ExitNotFound = 127
)

// ShimMain is the shim: PID 1's main calls it for "init shim ARGS" and
// exits with what it returns. It only returns on failure: on success the
// process has become the workload.
func ShimMain(args []string) int {
	// prctl, capset and execve act on the calling thread: do them all
	// on this one.
	runtime.LockOSThread()
	status := shimStatus(os.Getenv(ShimStatusEnv))
	cfg, err := readShimConfig(args, os.Getenv(ShimSpecEnv))
	if err != nil {
		return shimFail(status, ExitShimUsage, err)
	}
	if err := joinCgroups(cfg); err != nil {
		return shimFail(status, ExitShimPrivileges, err)
	}
	if cfg.Rung >= isolation.Namespaces && !cfg.Inner {
		return nsInit(cfg, status)
	}
	for _, step := range shimSteps {
		if err := step.f(cfg); err != nil {
			return shimFail(status, step.code, err)
		}
	}
	argv0, err := lookPath(cfg.Command[0], pathOf(cfg.Env))
	if err != nil {
		return shimFail(status, ExitNotFound, err)
	}
	code, err := execFailure(argv0, syscall.Exec(argv0, cfg.Command, cfg.Env))
	return shimFail(status, code, err)
}

// joinCgroups puts the shim into its container's cgroups, before it
// starts anything (cgroup v1: on v2 PID 1 started it in its group).
// "0" means the writer, whatever its pid namespace.
func joinCgroups(cfg *shimConfig) error {
	if cfg.Inner {
		return nil // the outer shim joined; its children are in
	}
	for _, f := range cfg.Cgroups {
		if err := os.WriteFile(f, []byte("0"), 0); err != nil {
			return fmt.Errorf("join cgroup: %w", err)
		}
	}
	return nil
}

// shimSteps run in order; the first error ends the shim with its code.
var shimSteps = []struct {
	code int
	f    func(*shimConfig) error
}{
	{ExitShimPrivileges, resetIgnoredSignals}, // first: it reads /proc, which the root lacks
	{ExitShimRoot, enterRoot},
	{ExitShimRoot, makeDev},
	{ExitShimPrivileges, setRlimits},
	{ExitShimPrivileges, setNoNewPrivs},
	{ExitShimPrivileges, dropBoundingSet},
	{ExitShimPrivileges, setCredentials},
	{ExitShimPrivileges, clearInheritable},
}

// resetIgnoredSignals gives the workload default signal dispositions:
// execve keeps an ignored signal ignored, and whatever started the node
// (or a test runner) may have ignored some. Handled signals are reset by
// execve itself. Only signals ignored now are touched, so the Go runtime
// of the shim, which handles its own, is not disturbed before the exec.
func resetIgnoredSignals(*shimConfig) error {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil // no /proc on the node: nothing to go by
	}
	mask, ok := procstatus.Hex(string(b), "SigIgn")
	if !ok {
		return nil
	}
	var dfl [4]uintptr // struct sigaction: handler SIG_DFL, flags, restorer, mask
	for sig := 1; sig <= 64; sig++ {
		if mask&(1<<(sig-1)) == 0 || sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0); e != 0 {
			return fmt.Errorf("reset signal %d: %w", sig, e)
		}
	}
	return nil
}

// shimStatus opens the status pipe and marks it close-on-exec, so that
// a successful execve closes it.
func shimStatus(env string) *os.File {
	fd, err := strconv.Atoi(env)
	if err != nil || fd < 3 {
		return nil
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return nil
	}
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), "status")
}

func readShimConfig(args []string, env string) (*shimConfig, error) {
	if len(args) != 0 || env == "" {
		return nil, fmt.Errorf("usage: init shim (with %s set): started by the supervisor only", ShimSpecEnv)
	}
	var cfg shimConfig
	if err := json.Unmarshal([]byte(env), &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", ShimSpecEnv, err)
	}
	if cfg.Root == "" || len(cfg.Command) == 0 || cfg.Command[0] == "" {
		return nil, fmt.Errorf("%s: no root or no command", ShimSpecEnv)
	}
	return &cfg, nil
}

// shimFail reports err on stderr (the container's log) and the status
// pipe, and returns code.
func shimFail(status *os.File, code int, err error) int {
	msg := "allium shim: " + err.Error()
	fmt.Fprintln(os.Stderr, msg)
	if status != nil {
		status.WriteString(msg)
		status.Close()
	}
	return code
}

// enterRoot chroots into the root, or, in the inner shim of the
// namespaces rung, pivots into it (pivot_root: the shim's mount
// namespace is ready).
func enterRoot(cfg *shimConfig) error {
	if cfg.Inner {
		if err := pivot(cfg.Root); err != nil {
			return err
		}
	} else if err := unix.Chroot(cfg.Root); err != nil {
		return &os.PathError{Op: "chroot", Path: cfg.Root, Err: err}
	}
	if err := unix.Chdir("/"); err != nil {
		return &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	if err := unix.Chdir(cfg.Workdir); err != nil {
		return &os.PathError{Op: "chdir to workdir", Path: cfg.Workdir, Err: err}
	}
	return nil
}

// devices are the pseudo-devices every workload may expect (a shell's
// "cmd &" opens /dev/null). Images carry no device nodes (imagestore
// refuses them), so the shim makes these in the root if they are
// missing: harmless nodes, made after chroot so that a symlinked /dev
// resolves inside the root. The namespaces rung mounts a minimal /dev
// instead (nsMounts).
var devices = []struct {
	name         string
	major, minor uint32
}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}}

// makeDev is best effort: a read-only root or a node without CAP_MKNOD
// (an OpenVZ container) leaves /dev as it is, and the workload runs.
func makeDev(cfg *shimConfig) error {
	if cfg.Inner {
		return nil
	}
	os.Mkdir("/dev", 0o755)
	for _, d := range devices {
		p := "/dev/" + d.name
		if unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(d.major, d.minor))) == nil {
			unix.Chmod(p, 0o666) // the umask took some bits
		}
	}
	return nil
}

// setRlimits sets soft and hard limits alike. It goes through
// unix.Setrlimit, which tells the Go runtime not to restore its own
// RLIMIT_NOFILE at execve. Without a nofile of its own, the workload
// gets WorkloadNofile as its soft limit (and the node's hard limit):
// PID 1 raised its own soft limit (RaiseOpenFiles), which the shim
// inherits, and a soft limit of a million slows the programs that close
// every descriptor up to it.
func setRlimits(cfg *shimConfig) error {
	if _, ok := cfg.Rlimits["nofile"]; !ok {
		var l unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err == nil && l.Cur > WorkloadNofile {
			l.Cur = min(WorkloadNofile, l.Max)
			if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
				return fmt.Errorf("setrlimit nofile %d: %w", l.Cur, os.NewSyscallError("setrlimit", err))
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Rlimits)) {
		res, ok := rlimitResources[name]
		if !ok {
			return fmt.Errorf("rlimit %q: unknown", name)
		}
		v := cfg.Rlimits[name]
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: v, Max: v}); err != nil {
			return fmt.Errorf("setrlimit %s %d: %w", name, v, os.NewSyscallError("setrlimit", err))
		}
	}
	return nil
}

func setNoNewPrivs(*shimConfig) error {
	return os.NewSyscallError("prctl(PR_SET_NO_NEW_PRIVS)", unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
}

// rootCaps is the bounding set a uid-0 workload keeps: Docker's default
// set without CAP_MKNOD, CAP_NET_RAW and CAP_SYS_CHROOT, which at the
// chroot rung (no device cgroup, the node's network, no mount namespace)
// would reach the node's disks, sniff its traffic or leave the chroot.
var rootCaps = []uintptr{
	unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_FOWNER, unix.CAP_FSETID, unix.CAP_KILL,
	unix.CAP_SETGID, unix.CAP_SETUID, unix.CAP_SETPCAP, unix.CAP_NET_BIND_SERVICE,
	unix.CAP_SETFCAP, unix.CAP_AUDIT_WRITE,
}

// chrootDropped are the rootCaps a root workload at the chroot rung
// does not keep. It shares the node's pid namespace there, and the
// kernel lets a process signal another only with CAP_KILL or a uid in
// common (kill_ok_by_cred): PID 1's real uid is InitUID and tor has a
// user of its own, so without CAP_KILL it cannot signal either, nor a
// container of another uid. Without CAP_SETUID it cannot take their
// uids either (setuid, or a user namespace mapping one), which would
// give it the uid in common. So a root workload there cannot signal its
// own non-root children, nor drop to another user: run as the
// manifest's user. From the namespaces rung up the pid namespace keeps
// its signals inside, and it keeps both.
var chrootDropped = []uintptr{unix.CAP_KILL, unix.CAP_SETUID}

// keepCap reports whether a workload of cfg keeps capability c in its
// bounding set.
func keepCap(cfg *shimConfig, c uintptr) bool {
	if cfg.UID != 0 || !slices.Contains(rootCaps, c) {
		return false
	}
	return cfg.Rung >= isolation.Namespaces || !slices.Contains(chrootDropped, c)
}

// dropBoundingSet empties the bounding set for a non-root workload and
// cuts it to rootCaps for root (less chrootDropped at the chroot rung);
// the ambient set goes too.
func dropBoundingSet(cfg *shimConfig) error {
	for c := uintptr(0); c < 64; c++ {
		if keepCap(cfg, c) {
			continue
		}
		in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, c, 0, 0, 0)
		if errors.Is(err, unix.EINVAL) {
			break // past CAP_LAST_CAP
		}
		if err != nil || in == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, c, 0, 0, 0); err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, os.NewSyscallError("prctl", err))
		}
	}
	// EINVAL: a kernel before 4.3 has no ambient set to clear.
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return os.NewSyscallError("prctl(PR_CAP_AMBIENT_CLEAR_ALL)", err)
	}
	return nil
}

// setCredentials uses package syscall's calls, which change every
// thread of the process, unlike unix.Setgroups.
func setCredentials(cfg *shimConfig) error {
	groups := make([]int, len(cfg.Groups))
	for i, g := range cfg.Groups {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups %v: %w", cfg.Groups, os.NewSyscallError("setgroups", err))
	}
	if err := syscall.Setgid(int(cfg.GID)); err != nil {
		return fmt.Errorf("setgid %d: %w", cfg.GID, os.NewSyscallError("setgid", err))
	}
	if err := syscall.Setuid(int(cfg.UID)); err != nil {
		return fmt.Errorf("setuid %d: %w", cfg.UID, os.NewSyscallError("setuid", err))
	}
	return nil
}

// clearInheritable empties the inheritable set: it survives setuid and
// would otherwise combine with file capabilities at execve.
func clearInheritable(*shimConfig) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return os.NewSyscallError("capget", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	return os.NewSyscallError("capset", unix.Capset(&hdr, &data[0]))
}

// pathOf is PATH in env, or DefaultPath.
func pathOf(env []string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], "PATH="); ok {
			return v
		}
	}
	return DefaultPath
}

// lookPath finds file in path, inside the new root, as the workload's
// user. A name with a slash is taken as it is (execve reports on it).
func lookPath(file, path string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q not found in PATH %s", file, path)
}

// execFailure is the exit code and message for a failed execve: 127 if
// the file is not there, 126 if it is but cannot run.
func execFailure(argv0 string, err error) (int, error) {
	code, hint := ExitCannotExec, ""
	if errors.Is(err, unix.ENOENT) {
		if _, serr := os.Stat(argv0); serr == nil {
			hint = " (the file exists: is its ELF interpreter or #! line missing from the image?)"
		} else {
			code = ExitNotFound
		}
	}
	return code, fmt.Errorf("exec %s: %w%s", argv0, os.NewSyscallError("execve", err), hint)
}
