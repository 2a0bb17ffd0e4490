package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Version is the manifest schema this node understands.
const Version = 1

// File is the manifest's name at the root of an image archive.
const File = "manifest.json"

// RootfsDir is the directory of an image archive that becomes the
// container's root.
const RootfsDir = "rootfs"

// Manifest is an image's manifest.json. Unknown fields are an error, so
// a typo is not silently ignored. The zero value of each optional field
// is the documented default.
type Manifest struct {
	// Version is the schema version; required, and Version.
	Version int `json:"version"`
	// Name is the container's default name; required.
	Name string `json:"name"`
	// Command is the argv of the workload, resolved inside the
	// container's root; required.
	Command []string `json:"command"`
	// Env is added to the workload's environment.
	Env map[string]string `json:"env,omitempty"`
	// Workdir is the working directory; "" means "/".
	Workdir string `json:"workdir,omitempty"`
	// User is "NAME", "UID" or "UID:GID"; "" means root (0:0). A name
	// is looked up in the image's /etc/passwd at start.
	User string `json:"user,omitempty"`
	// Restart is the restart policy; its zero value is the default
	// policy (always, 1 s doubling to 5 min, reset after 60 s).
	Restart Restart `json:"restart,omitzero"`
	// Stop is how the container is stopped; zero means SIGTERM, 10 s.
	Stop Stop `json:"stop,omitzero"`
	// Isolation is what the container needs from the node.
	Isolation Isolation `json:"isolation,omitzero"`
	// Resources limits the container.
	Resources Resources `json:"resources,omitzero"`
	// Volumes are directories that survive redeploys.
	Volumes []Volume `json:"volumes,omitempty"`
	// Ports the workload listens on: with host networking they are the
	// node's ports and this is informational; with a private network
	// each is published on the node's addresses at the same number.
	Ports []Port `json:"ports,omitempty"`
	// Ready is a readiness probe; nil means ready once started.
	Ready *Ready `json:"ready,omitempty"`
	// Allow asks for entries the node refuses by default.
	Allow Allow `json:"allow,omitzero"`
}

// Restart policies.
const (
	RestartAlways    = "always"
	RestartOnFailure = "on-failure"
	RestartNever     = "never"
)

// Restart is the restart policy of a container.
type Restart struct {
	// Policy is "always" (the default), "on-failure" or "never".
	Policy string `json:"policy,omitempty"`
	// NoRestartCodes are exit codes after which the container stays
	// down. Exit 125 always means that, listed or not.
	NoRestartCodes []int `json:"no_restart_codes,omitempty"`
	// RestartCodes are exit codes that restart even under "never" or,
	// for 0, under "on-failure".
	RestartCodes []int `json:"restart_codes,omitempty"`
	// Delay is the first delay; "" means 1s.
	Delay Duration `json:"delay,omitzero"`
	// MaxDelay caps the doubling; "" means 5m.
	MaxDelay Duration `json:"max_delay,omitzero"`
	// ResetAfter is how long a run must last to reset the backoff; ""
	// means 60s.
	ResetAfter Duration `json:"reset_after,omitzero"`
}

// Stop is how a container is stopped.
type Stop struct {
	// Signal is sent first; "" means SIGTERM.
	Signal string `json:"signal,omitempty"`
	// Timeout is how long to wait before SIGKILL of the whole process
	// group; "" means 10s.
	Timeout Duration `json:"timeout,omitzero"`
}

// Isolation levels, weakest first.
var IsolationLevels = []string{"chroot", "namespaces", "userns", "cgroups"}

// Isolation is what the container needs from the node.
type Isolation struct {
	// Minimum is the weakest level the container may run at; "" means
	// "chroot". A node that cannot meet it refuses to start it.
	Minimum string `json:"minimum,omitempty"`
	// Namespaces wanted, from "mount", "pid", "uts", "ipc", "net";
	// empty means all but net (when the node can).
	Namespaces []string `json:"namespaces,omitempty"`
	// Network is "host" (the default) or "private".
	Network string `json:"network,omitempty"`
}

// Resources limits a container. Zero means no limit.
type Resources struct {
	// Memory is a size: "256M", "1G", or bytes.
	Memory Size `json:"memory,omitzero"`
	// Pids caps the number of processes.
	Pids int `json:"pids,omitempty"`
	// CPUWeight is the cgroup v2 cpu.weight, 1-10000; 0 means 100.
	CPUWeight int `json:"cpu_weight,omitempty"`
	// Rlimits by name without RLIMIT_, lower case: "nofile", "nproc",
	// "core", "stack", "as", "fsize", "memlock", "cpu", "data".
	Rlimits map[string]uint64 `json:"rlimits,omitempty"`
}

// Volume is a persistent directory, kept at volumes/NAME/VOLUME on the
// node and mounted (or linked) at Path in the container.
type Volume struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// Port is a port the workload listens on.
type Port struct {
	Port     int    `json:"port"`
	Protocol string `json:"protocol,omitempty"` // "tcp" (default) or "udp"
}

// Ready is a readiness probe: exactly one of its fields.
type Ready struct {
	// TCP is a port on the node's loopback that accepts connections
	// once the workload is ready.
	TCP int `json:"tcp,omitempty"`
	// HTTP is a URL on loopback that answers 2xx once ready.
	HTTP string `json:"http,omitempty"`
	// FD is a file descriptor number (>= 3) on which the workload
	// writes a newline once ready.
	FD int `json:"fd,omitempty"`
	// Timeout is how long to wait; "" means 60s.
	Timeout Duration `json:"timeout,omitzero"`
}

// Allow asks for what the node refuses by default.
type Allow struct {
	// Devices allows device nodes in the rootfs.
	Devices bool `json:"devices,omitempty"`
	// Setuid allows setuid and setgid bits in the rootfs.
	Setuid bool `json:"setuid,omitempty"`
}

// Parse decodes and validates a manifest. The error names the
// field and says what was wrong:
//
//	manifest.json: restart.delay "5x": not a duration (e.g. "5s")
func Parse(r io.Reader) (*Manifest, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", File, err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", File, MaxSize)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var m Manifest
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", File, jsonError(err, b))
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s: trailing data after the JSON object", File)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", File, err)
	}
	m.normalize()
	return &m, nil
}

// normalize makes empty lists and maps nil, so that a manifest has one
// value however it was written ("env": {} or no env at all) and
// survives a round trip through JSON unchanged.
func (m *Manifest) normalize() {
	nilIfEmpty(&m.Env)
	nilIfEmpty(&m.Resources.Rlimits)
	nilIfEmptySlice(&m.Restart.NoRestartCodes)
	nilIfEmptySlice(&m.Restart.RestartCodes)
	nilIfEmptySlice(&m.Isolation.Namespaces)
	nilIfEmptySlice(&m.Volumes)
	nilIfEmptySlice(&m.Ports)
}

func nilIfEmpty[M ~map[K]V, K comparable, V any](m *M) {
	if len(*m) == 0 {
		*m = nil
	}
}

func nilIfEmptySlice[S ~[]E, E any](s *S) {
	if len(*s) == 0 {
		*s = nil
	}
}

// MaxSize is the largest manifest.json accepted, in bytes.
const MaxSize = 1 << 20

var (
	nameRE   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`) })
	envKeyRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`) })
	userRE   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([a-z_][a-z0-9_-]{0,31}|[0-9]+(:[0-9]+)?)$`) })
)

// ValidName reports whether name can name a container (and a volume).
func ValidName(name string) error {
	if !nameRE().MatchString(name) {
		return fmt.Errorf("%q: use 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// Validate checks every field and returns the first problem, naming it.
func (m *Manifest) Validate() error {
	if m.Version == 0 {
		return fmt.Errorf("version: missing; this node understands version %d", Version)
	}
	if m.Version != Version {
		return fmt.Errorf("version %d: this node understands version %d", m.Version, Version)
	}
	if err := ValidName(m.Name); err != nil {
		return fmt.Errorf("name %w", err)
	}
	for _, check := range []func() error{m.checkCommand, m.checkEnv, m.checkUser, m.Restart.check, m.Stop.check,
		m.Isolation.check, m.Resources.check, m.checkVolumes, m.checkPorts, m.checkReady} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manifest) checkCommand() error {
	if len(m.Command) == 0 || m.Command[0] == "" {
		return errors.New("command: empty; give the program and its arguments, e.g. [\"/bin/httpd\", \"-f\"]")
	}
	for i, a := range m.Command {
		if strings.ContainsRune(a, 0) {
			return fmt.Errorf("command[%d]: contains a NUL byte", i)
		}
	}
	if m.Workdir != "" && !path.IsAbs(m.Workdir) {
		return fmt.Errorf("workdir %q: not an absolute path", m.Workdir)
	}
	return nil
}

func (m *Manifest) checkEnv() error {
	for k, v := range m.Env {
		if !envKeyRE().MatchString(k) {
			return fmt.Errorf("env %q: not a variable name", k)
		}
		if strings.ContainsRune(v, 0) {
			return fmt.Errorf("env %s: value contains a NUL byte", k)
		}
	}
	return nil
}

func (m *Manifest) checkUser() error {
	if m.User != "" && !userRE().MatchString(m.User) {
		return fmt.Errorf("user %q: want a user name, a UID, or UID:GID", m.User)
	}
	for _, id := range strings.Split(m.User, ":") {
		if n, err := strconv.ParseUint(id, 10, 32); (err == nil && n > MaxID) || errors.Is(err, strconv.ErrRange) {
			return fmt.Errorf("user %q: IDs go up to %d", m.User, MaxID)
		}
	}
	return nil
}

// MaxID is the largest usable UID or GID ((uid_t)-1 means "none").
const MaxID = 1<<32 - 2

func (r Restart) check() error {
	if !slices.Contains([]string{"", RestartAlways, RestartOnFailure, RestartNever}, r.Policy) {
		return fmt.Errorf("restart.policy %q: want always, on-failure or never", r.Policy)
	}
	for _, codes := range [][]int{r.NoRestartCodes, r.RestartCodes} {
		for _, c := range codes {
			if c < 0 || c > 255 {
				return fmt.Errorf("restart: exit code %d: want 0-255", c)
			}
		}
	}
	if r.MaxDelay.D != 0 && r.Delay.D > r.MaxDelay.D {
		return fmt.Errorf("restart.delay %v is longer than restart.max_delay %v", r.Delay.D, r.MaxDelay.D)
	}
	return nil
}

func (s Stop) check() error {
	if s.Signal != "" {
		if _, err := ParseSignal(s.Signal); err != nil {
			return fmt.Errorf("stop.signal %w", err)
		}
	}
	return nil
}

// signals are the signals a manifest or an operator may name, without
// "SIG", with their numbers on Linux (the node's numbers, whatever OS
// the client runs on).
var signals = map[string]int{
	"HUP": 1, "INT": 2, "QUIT": 3, "KILL": 9, "USR1": 10, "USR2": 12, "TERM": 15, "WINCH": 28, "PWR": 30,
}

// ParseSignal reads a signal name: "SIGTERM", "TERM" or "term". It
// returns the signal's number on Linux, or an error naming the name:
//
//	"SIGFOO": not a signal name (e.g. "SIGTERM")
func ParseSignal(name string) (int, error) {
	n, ok := signals[strings.TrimPrefix(strings.ToUpper(name), "SIG")]
	if !ok {
		return 0, fmt.Errorf("%q: not a signal name (e.g. \"SIGTERM\")", name)
	}
	return n, nil
}

func (i Isolation) check() error {
	if i.Minimum != "" && !slices.Contains(IsolationLevels, i.Minimum) {
		return fmt.Errorf("isolation.minimum %q: want one of %s", i.Minimum, strings.Join(IsolationLevels, ", "))
	}
	for _, ns := range i.Namespaces {
		if !slices.Contains([]string{"mount", "pid", "uts", "ipc", "net"}, ns) {
			return fmt.Errorf("isolation.namespaces: %q: want mount, pid, uts, ipc or net", ns)
		}
	}
	if !slices.Contains([]string{"", "host", "private"}, i.Network) {
		return fmt.Errorf("isolation.network %q: want host or private", i.Network)
	}
	return nil
}

// Rlimits are the rlimit names a manifest may set.
var Rlimits = []string{"as", "core", "cpu", "data", "fsize", "memlock", "nofile", "nproc", "stack"}

// MinMemory is the smallest memory limit a manifest may set: below it
// not even the shim starts.
const MinMemory = 4 << 20

func (r Resources) check() error {
	if r.Memory != 0 && r.Memory < MinMemory {
		return fmt.Errorf("resources.memory %d: too little to run anything; give at least \"4M\"", r.Memory)
	}
	if r.Pids < 0 {
		return fmt.Errorf("resources.pids %d: negative", r.Pids)
	}
	if r.CPUWeight < 0 || r.CPUWeight > 10000 {
		return fmt.Errorf("resources.cpu_weight %d: want 1-10000", r.CPUWeight)
	}
	for k := range r.Rlimits {
		if !slices.Contains(Rlimits, k) {
			return fmt.Errorf("resources.rlimits %q: want one of %s", k, strings.Join(Rlimits, ", "))
		}
	}
	return nil
}

func (m *Manifest) checkVolumes() error {
	seen := map[string]bool{}
	for i, v := range m.Volumes {
		if err := ValidName(v.Name); err != nil {
			return fmt.Errorf("volumes[%d].name %w", i, err)
		}
		if !path.IsAbs(v.Path) || path.Clean(v.Path) != v.Path || v.Path == "/" {
			return fmt.Errorf("volumes[%d].path %q: want a clean absolute path other than /", i, v.Path)
		}
		if seen[v.Name] {
			return fmt.Errorf("volumes[%d].name %q: used twice", i, v.Name)
		}
		seen[v.Name] = true
	}
	return nil
}

func (m *Manifest) checkPorts() error {
	for i, p := range m.Ports {
		if p.Port < 1 || p.Port > 65535 {
			return fmt.Errorf("ports[%d].port %d: want 1-65535", i, p.Port)
		}
		if p.Protocol != "" && p.Protocol != "tcp" && p.Protocol != "udp" {
			return fmt.Errorf("ports[%d].protocol %q: want tcp or udp", i, p.Protocol)
		}
	}
	return nil
}

func (m *Manifest) checkReady() error {
	r := m.Ready
	if r == nil {
		return nil
	}
	set := 0
	for _, b := range []bool{r.TCP != 0, r.HTTP != "", r.FD != 0} {
		if b {
			set++
		}
	}
	switch {
	case set != 1:
		return errors.New("ready: give exactly one of tcp, http or fd")
	case r.TCP < 0 || r.TCP > 65535:
		return fmt.Errorf("ready.tcp %d: want 1-65535", r.TCP)
	case r.FD != 0 && r.FD < 3:
		return fmt.Errorf("ready.fd %d: want 3 or more (0-2 are stdio)", r.FD)
	case r.HTTP != "" && !strings.HasPrefix(r.HTTP, "http://"):
		return fmt.Errorf("ready.http %q: want an http:// URL", r.HTTP)
	}
	return nil
}
