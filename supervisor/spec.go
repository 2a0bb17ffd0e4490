package supervisor

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"slices"
	"strconv"
	"syscall"
	"time"

	"allium/manifest"
	"allium/supervisor/cgroup"
	"allium/supervisor/idmap"
	"allium/supervisor/isolation"
	"allium/supervisor/restart"

	"golang.org/x/sys/unix"
)

// Spec is one container as the supervisor runs it. The zero value of
// each optional field is the documented default.
type Spec struct {
	// Name names the container; required.
	Name string `json:"name"`
	// Root is the container's root directory on the node
	// (/containers/NAME); required, absolute.
	Root string `json:"root"`
	// Command is the workload's argv; required. A name without a slash
	// is looked up in the container's PATH inside Root.
	Command []string `json:"command"`
	// Env is the workload's whole environment, "K=V" (see Environ).
	Env []string `json:"env,omitempty"`
	// Workdir is the working directory inside Root; "" means "/".
	Workdir string `json:"workdir,omitempty"`
	// UID, GID and Groups are the credentials the workload runs with;
	// zero is root, with no supplementary groups.
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`
	// Rlimits by manifest.Rlimits name; each sets the soft and hard
	// limit. Unset limits are inherited from PID 1.
	Rlimits map[string]uint64 `json:"rlimits,omitempty"`
	// StopSignal is sent to the process group first; 0 means SIGTERM.
	StopSignal unix.Signal `json:"stop_signal,omitempty"`
	// StopTimeout is how long to wait before SIGKILL of the whole
	// process group; 0 means 10 s.
	StopTimeout time.Duration `json:"stop_timeout,omitempty"`
	// LogDir receives stdout and stderr (see logs.go); "" discards
	// them (the workload gets /dev/null).
	LogDir string `json:"log_dir,omitempty"`
	// Policy is the restart policy.
	Policy restart.Policy `json:"policy"`
	// Rung is the rung of the isolation ladder the container runs at;
	// zero is isolation.Chroot. At Namespaces and above the shim starts
	// in new mount, pid, uts and ipc namespaces and stays as the
	// container's PID 1 (shim_ns_linux.go); at Userns and above also in
	// a new user namespace that maps IDs. Cgroups adds nothing here: the
	// limits apply wherever the supervisor has cgroups (UseCgroups).
	Rung isolation.Rung `json:"rung,omitempty"`
	// IDs are the host uids and gids the container's ids 0-65535 map
	// to at the userns rung and above, where they are required; the
	// files of Root must be owned accordingly (idmap).
	IDs idmap.Range `json:"ids,omitzero"`
	// PrivateNet gives the container a network namespace of its own
	// (CLONE_NEWNET), which Options.Network attaches to the node's
	// bridge before the workload starts; false shares the node's
	// network. It needs the namespaces rung or above.
	PrivateNet bool `json:"private_net,omitempty"`
	// Limits are the container's cgroup limits, applied once the
	// supervisor has cgroups (UseCgroups); zero fields mean no limit.
	Limits cgroup.Limits `json:"limits,omitzero"`
	// CgroupProcs are cgroup.procs files the shim joins first of all
	// (the supervisor sets them on cgroup v1; v2 starts the shim in its
	// group); nil means none.
	CgroupProcs []string `json:"-"`
	// Ready is a readiness probe; nil (and ReadyFD 0) means ready once
	// started.
	Ready Probe `json:"-"`
	// ReadyFD, if not 0, is a descriptor (>= 3) on which the workload
	// writes a newline once ready.
	ReadyFD int `json:"ready_fd,omitempty"`
	// ReadyTimeout bounds the wait for readiness; 0 means 60 s. A
	// workload not ready in time is stopped and counted as a failure.
	ReadyTimeout time.Duration `json:"ready_timeout,omitempty"`
}

// Defaults of Spec's fields.
const (
	DefaultStopTimeout  = 10 * time.Second
	DefaultReadyTimeout = 60 * time.Second
	DefaultPath         = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// Validate reports a Spec that cannot run.
func (s *Spec) Validate() error {
	switch {
	case s.Name == "":
		return fmt.Errorf("%w: no name", ErrInvalidSpec)
	case !path.IsAbs(s.Root):
		return fmt.Errorf("%w: %s: root %q is not absolute", ErrInvalidSpec, s.Name, s.Root)
	case len(s.Command) == 0 || s.Command[0] == "":
		return fmt.Errorf("%w: %s: no command", ErrInvalidSpec, s.Name)
	case s.ReadyFD != 0 && s.ReadyFD < 3:
		return fmt.Errorf("%w: %s: ready fd %d: want 3 or more", ErrInvalidSpec, s.Name, s.ReadyFD)
	case s.Rung < isolation.Chroot || s.Rung > isolation.Cgroups:
		return fmt.Errorf("%w: %s: isolation %v: not a rung", ErrInvalidSpec, s.Name, s.Rung)
	case s.Rung >= isolation.Userns && (s.IDs.IsZero() || s.IDs.Base == 0):
		return fmt.Errorf("%w: %s: isolation %v: no range of host ids to map the container's to", ErrInvalidSpec, s.Name, s.Rung)
	case s.PrivateNet && s.Rung < isolation.Namespaces:
		return fmt.Errorf("%w: %s: a private network needs the namespaces rung, not %v", ErrInvalidSpec, s.Name, s.Rung)
	}
	for k := range s.Rlimits {
		if _, ok := rlimitResources[k]; !ok {
			return fmt.Errorf("%w: %s: unknown rlimit %q", ErrInvalidSpec, s.Name, k)
		}
	}
	if n := len(shimEnv(s)); n > maxShimEnv {
		return fmt.Errorf("%w: %s: spec is %d bytes, over the %d an environment variable may hold", ErrInvalidSpec, s.Name, n, maxShimEnv)
	}
	return nil
}

func (s *Spec) stopSignal() unix.Signal {
	if s.StopSignal == 0 {
		return unix.SIGTERM
	}
	return s.StopSignal
}

func (s *Spec) stopTimeout() time.Duration {
	if s.StopTimeout <= 0 {
		return DefaultStopTimeout
	}
	return s.StopTimeout
}

func (s *Spec) readyTimeout() time.Duration {
	if s.ReadyTimeout <= 0 {
		return DefaultReadyTimeout
	}
	return s.ReadyTimeout
}

// rlimitResources maps manifest.Rlimits names to RLIMIT_* numbers.
var rlimitResources = map[string]int{
	"as": unix.RLIMIT_AS, "core": unix.RLIMIT_CORE, "cpu": unix.RLIMIT_CPU,
	"data": unix.RLIMIT_DATA, "fsize": unix.RLIMIT_FSIZE, "memlock": unix.RLIMIT_MEMLOCK,
	"nofile": unix.RLIMIT_NOFILE, "nproc": unix.RLIMIT_NPROC, "stack": unix.RLIMIT_STACK,
}

// The shim reads its config from the environment, not argv: argv is
// world-readable in /proc/PID/cmdline and the workload's env may hold
// secrets, while /proc/PID/environ is readable by root only. One
// environment string is capped by the kernel at 128 KiB (MAX_ARG_STRLEN).
const (
	// ShimSpecEnv holds the shim's config, JSON.
	ShimSpecEnv = "ALLIUM_SHIM_SPEC"
	// ShimStatusEnv holds the number of the status pipe's descriptor.
	ShimStatusEnv = "ALLIUM_SHIM_STATUS_FD"
	// ShimNetEnv holds the number of the network gate's descriptor
	// (withNetGate), for a private network only.
	ShimNetEnv = "ALLIUM_SHIM_NET_FD"
	maxShimEnv = 128<<10 - 1
)

// shimConfig is what the shim needs of a Spec: the JSON in ShimSpecEnv.
type shimConfig struct {
	Root    string            `json:"root"`
	Command []string          `json:"command"`
	Env     []string          `json:"env"`
	Workdir string            `json:"workdir"`
	UID     uint32            `json:"uid"`
	GID     uint32            `json:"gid"`
	Groups  []uint32          `json:"groups"`
	Rlimits map[string]uint64 `json:"rlimits"`
	// Rung, Hostname and ReadyFD matter at the namespaces rung only:
	// the shim sets the hostname and passes the readiness descriptor on
	// to the workload.
	Rung     isolation.Rung `json:"rung,omitempty"`
	Hostname string         `json:"hostname,omitempty"`
	ReadyFD  int            `json:"ready_fd,omitempty"`
	// Cgroups are cgroup.procs files the shim joins before anything
	// else (Spec.CgroupProcs).
	Cgroups []string `json:"cgroups,omitempty"`
	// Inner is set by the namespaces rung's shim for the inner shim it
	// starts inside the container (shim_ns_linux.go); never by PID 1.
	Inner bool `json:"inner,omitempty"`
}

func shimEnv(s *Spec) string {
	wd := s.Workdir
	if wd == "" {
		wd = "/"
	}
	cfg := shimConfig{
		Root: s.Root, Command: s.Command, Env: s.Env, Workdir: wd,
		UID: s.UID, GID: s.GID, Groups: s.Groups, Rlimits: s.Rlimits, Cgroups: s.CgroupProcs,
	}
	if s.Rung >= isolation.Namespaces {
		cfg.Rung, cfg.Hostname, cfg.ReadyFD = isolation.Namespaces, s.Name, s.ReadyFD
	}
	return ShimSpecEnv + "=" + shimJSON(&cfg)
}

func shimJSON(cfg *shimConfig) string {
	b, _ := json.Marshal(cfg) // cannot fail: strings, numbers, slices, maps
	return string(b)
}

// nsCloneflags are the namespaces a container gets at the namespaces
// rung: mount, pid, uts and ipc. No network namespace: the container
// shares the node's network (host networking is the default) unless
// its Spec asks for a private one (Command adds CLONE_NEWNET).
const nsCloneflags = unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC

// sysProcAttr is how PID 1 starts s's shim: a new session and process
// group, at Namespaces and above new namespaces (and a network
// namespace of its own for a private network), and at Userns and above
// a new user namespace mapping the container's ids 0-65535 to s.IDs (Go
// writes the maps before the shim's execve; setgroups stays allowed,
// for the workload's supplementary groups). The shim becomes the
// namespace's root before its execve: host root is no one in the
// namespace, and would lose every capability at the exec.
func sysProcAttr(s *Spec) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setsid: true}
	if s.Rung >= isolation.Namespaces {
		a.Cloneflags = nsCloneflags
		if s.PrivateNet {
			a.Cloneflags |= unix.CLONE_NEWNET
		}
	}
	if s.Rung >= isolation.Userns {
		a.Cloneflags |= unix.CLONE_NEWUSER
		m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(s.IDs.Base), Size: int(s.IDs.Size)}}
		a.UidMappings, a.GidMappings, a.GidMappingsEnableSetgroups = m, m, true
		a.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	}
	return a
}

// Command is the command that starts s's workload through the shim:
// exe (PID 1's own binary, /proc/self/exe) run as "init shim", its
// config in the environment (ShimSpecEnv) and nothing else there, in a
// session and process group of its own (and, from the namespaces rung
// up, in new namespaces: sysProcAttr, and a network namespace for
// Spec.PrivateNet), with stdout and stderr the
// given files (nil: /dev/null) and stdin /dev/null. It is pure: it
// starts nothing. The supervisor adds the status pipe (withStatus) and,
// for a private network, the network gate (withNetGate).
func Command(exe string, s Spec, stdout, stderr *os.File) *exec.Cmd {
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        []string{"init", "shim"},
		Env:         []string{shimEnv(&s)},
		SysProcAttr: sysProcAttr(&s),
	}
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if stderr != nil {
		cmd.Stderr = stderr
	}
	return cmd
}

// withStatus passes the status pipe's write end, and the readiness
// pipe's at readyFD if there is one, as the child's extra descriptors.
// The status pipe is fd 3, or 4 when the workload wants its readiness
// pipe at 3.
func withStatus(cmd *exec.Cmd, status *os.File, readyFD int, ready *os.File) {
	statusFD := 3
	if readyFD == 3 {
		statusFD = 4
	}
	extra := make([]*os.File, max(statusFD, readyFD)-2)
	extra[statusFD-3] = status
	if ready != nil {
		extra[readyFD-3] = ready
	}
	cmd.ExtraFiles = extra
	cmd.Env = append(cmd.Env, ShimStatusEnv+"="+strconv.Itoa(statusFD))
}

// withNetGate passes the network gate's read end as the child's next
// descriptor, after the status and readiness pipes (withStatus first):
// the shim waits on it for PID 1's go-ahead once its network is
// attached (shim_ns_linux.go).
func withNetGate(cmd *exec.Cmd, gate *os.File) {
	fd := 3 + len(cmd.ExtraFiles)
	cmd.ExtraFiles = append(cmd.ExtraFiles, gate)
	cmd.Env = append(cmd.Env, ShimNetEnv+"="+strconv.Itoa(fd))
}

// FromManifest is the Spec of a container called name running the image
// m with its root at root and logs in logDir, at rung (with ids, its
// range of host ids, from the userns rung up). It resolves the user in
// root's /etc/passwd, so root must be in place.
func FromManifest(m *manifest.Manifest, name, root, logDir string, rung isolation.Rung, ids idmap.Range) (Spec, error) {
	if want, err := isolation.ParseRung(m.Isolation.Minimum); m.Isolation.Minimum != "" && (err != nil || want > rung) {
		return Spec{}, fmt.Errorf("%w: %s needs isolation %q; it would run at %s", ErrIsolation, name, m.Isolation.Minimum, rung)
	}
	if rung > MaxRung {
		rung = MaxRung
	}
	u, err := LookupUser(root, m.User)
	if err != nil {
		return Spec{}, err
	}
	s := Spec{
		Name: name, Root: root, Command: slices.Clone(m.Command), Env: Environ(m.Env, u),
		Workdir: m.Workdir, UID: u.UID, GID: u.GID, Groups: u.Groups,
		Rlimits: maps.Clone(m.Resources.Rlimits), StopTimeout: m.Stop.Timeout.D,
		LogDir: logDir, Policy: restart.PolicyFrom(m.Restart), Rung: rung, IDs: ids,
		Limits:     cgroup.Limits{Memory: uint64(m.Resources.Memory), Pids: m.Resources.Pids, CPUWeight: m.Resources.CPUWeight},
		PrivateNet: m.Isolation.Network == "private",
	}
	if m.Stop.Signal != "" {
		n, err := manifest.ParseSignal(m.Stop.Signal)
		if err != nil {
			return Spec{}, fmt.Errorf("stop.signal %w", err)
		}
		s.StopSignal = unix.Signal(n)
	}
	if r := m.Ready; r != nil {
		s.ReadyTimeout = r.Timeout.D
		s.ReadyFD = r.FD
		switch {
		case r.TCP != 0:
			s.Ready = TCPProbe{Addr: "127.0.0.1:" + strconv.Itoa(r.TCP)}
		case r.HTTP != "":
			s.Ready = HTTPProbe{URL: r.HTTP}
		}
	}
	return s, s.Validate()
}

// Environ is a workload's environment: env, plus PATH (DefaultPath) and
// HOME (the user's home) unless env sets them, sorted by name.
func Environ(env map[string]string, u User) []string {
	all := maps.Clone(env)
	if all == nil {
		all = map[string]string{}
	}
	if _, ok := all["PATH"]; !ok {
		all["PATH"] = DefaultPath
	}
	if _, ok := all["HOME"]; !ok {
		all["HOME"] = u.Home
	}
	out := make([]string, 0, len(all))
	for _, k := range slices.Sorted(maps.Keys(all)) {
		out = append(out, k+"="+all[k])
	}
	return out
}
