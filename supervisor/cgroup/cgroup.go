package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Limits are a container's resources. The zero value is no limit at all.
type Limits struct {
	// Memory is the most memory the group may use, in bytes; swap is
	// capped to 0 with it where the kernel accounts swap (v2
	// memory.swap.max, v1 memory.memsw.limit_in_bytes). 0 means no
	// limit, and swap unlimited.
	Memory uint64
	// Pids is the most tasks (processes and threads) in the group. 0
	// means no limit.
	Pids int
	// CPUWeight is the group's share of CPU time against its siblings
	// when they compete, 1 to 10000. 0 means the default, 100. v1 has
	// cpu.shares = weight*1024/100, at least 2.
	CPUWeight int
}

// Stats are a group's usage. A field the kernel does not offer is 0.
type Stats struct {
	CPU time.Duration // total CPU time used (v2 cpu.stat usage_usec, v1 cpuacct.usage)
	// Memory is the memory used now, in bytes (v2 memory.current, v1
	// memory.usage_in_bytes).
	Memory uint64
	// MemoryPeak is the most used, in bytes (v2 memory.peak, from Linux
	// 5.19; v1 memory.max_usage_in_bytes).
	MemoryPeak uint64
	Pids       int // tasks now (pids.current)
	// IORead and IOWrite are bytes read and written on block devices
	// (v2 io.stat rbytes and wbytes; v1
	// blkio.throttle.io_service_bytes); 0 without io or blkio.
	IORead, IOWrite uint64
	// OOMKills counts the processes the OOM killer killed in the group
	// (v2 memory.events oom_kill; v1 memory.oom_control oom_kill).
	OOMKills uint64
}

// Hierarchy is where Allium's cgroups live: under a base directory in
// every controller it uses.
type Hierarchy struct {
	root, base string // base is clean and absolute: "/allium"
	version    int
	// mounts are v1's hierarchies, by controller: memory →
	// /sys/fs/cgroup/memory. nil on v2.
	mounts map[string]string
	// dirs are the hierarchies a group has a directory in: the root on
	// v2; on v1 each controller's mount, once (cpu and cpuacct may be
	// one hierarchy).
	dirs []string
	kernel
}

// kernel is the seam between the package and the cgroup filesystem's
// side effects that a plain directory tree cannot play: the fake
// cgroupfs of the tests replaces it.
type kernel struct {
	mkdir  func(dir string) error // make one cgroup: os.Mkdir
	rmdir  func(dir string) error // remove one empty cgroup: os.Remove
	kill   func(pid int) error    // SIGKILL
	settle time.Duration          // how long to wait for the kernel to empty a group, or to freeze it
	poll   time.Duration          // how often to look meanwhile
}

var realKernel = kernel{mkdir: mkdir, rmdir: os.Remove, kill: sigkill, settle: 2 * time.Second, poll: 10 * time.Millisecond}

func mkdir(dir string) error { return os.Mkdir(dir, 0o755) }

// v1 hierarchies: the ones Open requires, then the ones used where
// mounted.
var (
	v1Required = []string{"memory", "pids", "cpu", "cpuacct"}
	v1Optional = []string{"blkio", "freezer"}
)

// Open finds the cgroup filesystem mounted at root (normally
// /sys/fs/cgroup): v2 when root is cgroup2 (statfs magic 0x63677270),
// else v1 with one hierarchy per controller (memory, pids, cpu and
// cpuacct required; blkio and freezer used when present). base is the
// directory Allium's groups live under in each, e.g. "/allium". The
// error names what is missing.
func Open(root, base string) (*Hierarchy, error) {
	v, err := detect(root)
	if err != nil {
		return nil, err
	}
	return open(root, base, v, isV1Mount)
}

// open is Open told the version; isV1 says whether a directory is a v1
// hierarchy. The tests' fake cgroupfs, a plain directory tree that
// statfs cannot tell from any other, comes in this way.
func open(root, base string, version int, isV1 func(string) bool) (*Hierarchy, error) {
	base = path.Clean("/" + base)
	h := &Hierarchy{root: root, base: base, version: version, kernel: realKernel}
	if version == 2 {
		h.dirs = []string{root}
		return h, h.checkV2()
	}
	return h, h.findV1(isV1)
}

// checkV2 checks that the root offers the controllers a group needs.
func (h *Hierarchy) checkV2() error {
	file := filepath.Join(h.root, "cgroup.controllers")
	b, err := os.ReadFile(file)
	if err != nil {
		return &Error{Op: "read", Path: file, Err: unwrapPath(err)}
	}
	have := strings.Fields(string(b))
	for _, c := range v2Required {
		if !slices.Contains(have, c) {
			return &Error{Op: "open", Path: file, Err: fmt.Errorf("%w: no %s", ErrMissingController, c)}
		}
	}
	return nil
}

// findV1 finds each controller's hierarchy under root.
func (h *Hierarchy) findV1(isV1 func(string) bool) error {
	h.mounts = map[string]string{}
	seen := map[string]bool{}
	for _, c := range append(append([]string{}, v1Required...), v1Optional...) {
		dir := filepath.Join(h.root, c)
		if !isV1(dir) {
			if slices.Contains(v1Required, c) {
				return &Error{Op: "open", Path: dir, Err: fmt.Errorf("%w: no cgroup v1 %s hierarchy", ErrMissingController, c)}
			}
			continue
		}
		h.mounts[c] = dir
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			real = dir
		}
		if !seen[real] {
			seen[real] = true
			h.dirs = append(h.dirs, dir)
		}
	}
	return nil
}

// Version is 2 for the unified hierarchy, 1 for v1.
func (h *Hierarchy) Version() int { return h.version }

// Group is one cgroup under the hierarchy's base: a container's or the
// node's. Making a Group touches nothing; Create does.
type Group struct {
	h    *Hierarchy
	name string // relative to the base; "" is the base itself
	err  error  // a bad name, returned by every method
}

// Group is the cgroup at name under the base: a clean relative path
// such as "containers/web" or "node"; "" is the base itself. A bad name
// makes every method of the group fail with ErrBadName.
func (h *Hierarchy) Group(name string) *Group {
	g := &Group{h: h, name: name}
	if name != "" && (path.Clean(name) != name || path.IsAbs(name) || name == "." || name == ".." || strings.HasPrefix(name, "../")) {
		g.err = fmt.Errorf("cgroup: group %q: %w", name, ErrBadName)
	}
	return g
}

// Name is the group's path under the base.
func (g *Group) Name() string { return g.name }

// Dir is, on v2, the group's directory, to open for
// SysProcAttr.UseCgroupFD (clone3's CLONE_INTO_CGROUP); false on v1,
// where a process is moved in with Add after it starts.
func (g *Group) Dir() (string, bool) {
	if g.h.version != 2 || g.err != nil {
		return "", false
	}
	return g.dirIn(g.h.root), true
}

// dirIn is the group's directory in the hierarchy mounted at mount.
func (g *Group) dirIn(mount string) string {
	return filepath.Join(mount, filepath.FromSlash(g.h.base), filepath.FromSlash(g.name))
}

// dirs are the group's directories, one per hierarchy.
// ProcsFiles are the group's cgroup.procs files, one per hierarchy: a
// process that writes "0" to each joins the group (on v1, where no
// clone3 puts a child straight into a group, the shim joins its own
// before it does anything else).
func (g *Group) ProcsFiles() []string {
	var out []string
	for _, d := range g.dirs() {
		out = append(out, filepath.Join(d, "cgroup.procs"))
	}
	return out
}

func (g *Group) dirs() []string {
	out := make([]string, 0, len(g.h.dirs))
	for _, m := range g.h.dirs {
		out = append(out, g.dirIn(m))
	}
	return out
}

// file is the path of one of the group's files. On v1 the file's
// prefix names its controller ("memory.max" is memory's; "cgroup.procs"
// is read in the memory hierarchy); false when that controller is not
// mounted.
func (g *Group) file(name string) (string, bool) {
	if g.h.version == 2 {
		return filepath.Join(g.dirIn(g.h.root), name), true
	}
	ctrl, _, _ := strings.Cut(name, ".")
	if ctrl == "cgroup" {
		ctrl = "memory"
	}
	m, ok := g.h.mounts[ctrl]
	if !ok {
		return "", false
	}
	return filepath.Join(g.dirIn(m), name), true
}

// writeFile writes value to a cgroup file, which must exist (the kernel
// makes them).
func writeFile(file, value string) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_TRUNC, 0)
	if err == nil {
		_, err = f.WriteString(value)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return &Error{Op: "write", Path: file, Value: value, Err: unwrapPath(err)}
	}
	return nil
}

func readFile(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", &Error{Op: "read", Path: file, Err: unwrapPath(err)}
	}
	return string(b), nil
}

// exists reports whether a cgroup file is there: the kernel offers it.
func exists(file string) bool {
	_, err := os.Stat(file)
	return err == nil
}

// unwrapPath drops an *fs.PathError's own op and path: Error says them.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
