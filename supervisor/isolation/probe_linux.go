package isolation

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"allium/internal/errno"
	"allium/supervisor/idmap"

	"golang.org/x/sys/unix"

	"allium/internal/child"
)

// Options configure Probe. Starter is required.
type Options struct {
	// Starter starts the probe's children: PID 1's reaper.
	Starter child.Starter
	// Exe is the binary run as "init probe KIND" in each child; ""
	// means /proc/self/exe, PID 1 itself.
	Exe string
	// Root is where /proc/sys and /sys/fs/cgroup are read; "" means /.
	Root string
	// Ceiling, when set, keeps the node at or below a rung whatever the
	// kernel allows (allium.isolation= on the kernel command line; tests).
	Ceiling *Rung
	// UserRange is the host ids the probe's user namespace maps its
	// ids 0-65535 to; the zero Range means the first range containers
	// get (idmap.First), so that the probe tries what they will need.
	UserRange idmap.Range
}

// ProbeEnv marks the probe's children ("init probe KIND"), which are
// PID 1 of their pid namespace: init must not take them for the node's
// PID 1.
const ProbeEnv = "ALLIUM_PROBE"

// probeTimeout bounds one child of the probe.
const probeTimeout = 10 * time.Second

// namespaces are the kinds the probe clones, with their flags and the
// sysctl that can forbid them.
var namespaces = []struct {
	name   string
	flag   uintptr
	sysctl string
}{
	{"mount", unix.CLONE_NEWNS, "max_mnt_namespaces"},
	{"pid", unix.CLONE_NEWPID, "max_pid_namespaces"},
	{"uts", unix.CLONE_NEWUTS, "max_uts_namespaces"},
	{"ipc", unix.CLONE_NEWIPC, "max_ipc_namespaces"},
	{"net", unix.CLONE_NEWNET, "max_net_namespaces"},
	// As a container at the userns rung gets it: with new mount and pid
	// namespaces, a mapped range, as its root (ProbeMain then mounts).
	{"user", unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID, "max_user_namespaces"},
	{"cgroupns", unix.CLONE_NEWCGROUP, "max_cgroup_namespaces"},
}

// Probe tries, by real calls, what this kernel lets PID 1 do for its
// containers, and returns the highest rung and the reasons for the
// rest. Every namespace, pivot_root and overlayfs check runs in a child
// of its own (started through opts.Starter), so nothing it does touches
// PID 1's namespaces or mounts.
func Probe(ctx context.Context, opts Options) Report {
	if opts.Exe == "" {
		opts.Exe = "/proc/self/exe"
	}
	if opts.UserRange.IsZero() {
		opts.UserRange = idmap.Range{Base: idmap.First, Size: idmap.Size}
	}
	r := Report{Ceiling: opts.Ceiling}
	r.Checks = append(r.Checks, probeNamespaces(ctx, opts)...)
	r.Checks = append(r.Checks, probeMounts(ctx, opts)...)
	var cg []Check
	r.Cgroup, cg = probeCgroup(opts.Root)
	r.Checks = append(r.Checks, cg...)
	r.Checks = append(r.Checks, probeNftables())
	r.Highest = r.highest()
	return r
}

// probeNamespaces clones one child into every kind of namespace but the
// user namespace at once (each child re-executes PID 1's binary, which
// costs; on a kernel that allows them all one is enough), then tries
// the kinds one by one only if that failed, and the user namespace on
// its own, with a uid map.
func probeNamespaces(ctx context.Context, opts Options) []Check {
	var all uintptr
	for _, ns := range namespaces {
		if ns.flag != unix.CLONE_NEWUSER {
			all |= ns.flag
		}
	}
	together := runChild(ctx, opts, "namespaces", all)
	var out []Check
	for _, ns := range namespaces {
		if together.OK && ns.flag&unix.CLONE_NEWUSER == 0 {
			out = append(out, Check{Name: ns.name, OK: true})
			continue
		}
		if ns.flag&unix.CLONE_NEWUSER == 0 {
			out = append(out, probeNamespace(ctx, opts, ns.name, ns.flag, ns.sysctl).Check)
			continue
		}
		user := probeNamespace(ctx, opts, ns.name, ns.flag, ns.sysctl)
		if !user.OK && user.Why == "EPERM" && !idsMapped(opts.Root, opts.UserRange) {
			user.Why = fmt.Sprintf("EPERM: the node's own user namespace has no ids %s to map (an unprivileged OS container?)", opts.UserRange)
		}
		mounts := Check{Name: "userns_mounts", OK: user.lines["userns_mounts"] == "ok", Why: user.lines["userns_mounts"]}
		if !user.OK {
			mounts.Why = "no user namespace"
		}
		out = append(out, user.Check, mounts)
	}
	return out
}

// idsMapped reports whether the node's own user namespace has the ids
// of r (its /proc/self/uid_map); true where it cannot tell.
func idsMapped(root string, r idmap.Range) bool {
	b, err := os.ReadFile(filepath.Join(root, "/proc/self/uid_map"))
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		inside, _ := strconv.ParseUint(f[0], 10, 64)
		size, _ := strconv.ParseUint(f[2], 10, 64)
		if inside <= uint64(r.Base) && uint64(r.Base)+uint64(r.Size) <= inside+size {
			return true
		}
	}
	return false
}

// probeMounts runs one child in a new mount namespace that makes it
// private, tries overlayfs and pivot_root, and prints a line for each.
func probeMounts(ctx context.Context, opts Options) []Check {
	c := runChild(ctx, opts, "mounts", unix.CLONE_NEWNS)
	var out []Check
	for _, name := range []string{"private_mounts", "overlayfs", "pivot_root"} {
		why, ok := c.lines[name]
		switch {
		case !ok:
			out = append(out, Check{Name: name, Why: "the probe child said nothing of it: " + c.Why})
		case why == "ok":
			out = append(out, Check{Name: name, OK: true})
		default:
			out = append(out, Check{Name: name, Why: why})
		}
	}
	return out
}

// probeNamespace clones a child into a new namespace of one kind; the
// user namespace maps opts.UserRange.
func probeNamespace(ctx context.Context, opts Options, name string, flag uintptr, sysctl string) childResult {
	c := runChild(ctx, opts, name, flag)
	c.Name = name
	if !c.OK {
		if v := readSysctl(opts.Root, "user/"+sysctl); v == "0" {
			c.Why = "user." + sysctl + "=0"
		}
	}
	return c
}

// childResult is how a probe child ended: OK on exit 0, else Why; and
// the "name: result" lines it printed.
type childResult struct {
	Check
	lines map[string]string
}

// runChild runs "init probe KIND" in new namespaces of flags, and
// reports its exit and what it printed.
func runChild(ctx context.Context, opts Options, kind string, flags uintptr) childResult {
	if err := ctx.Err(); err != nil { // the node is shutting down: start nothing
		return childResult{Check: Check{Name: kind, Why: "not tried: " + err.Error()}}
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	out, w, err := os.Pipe()
	if err != nil {
		return childResult{Check: Check{Name: kind, Why: err.Error()}}
	}
	defer out.Close()
	cmd := &exec.Cmd{Path: opts.Exe, Args: []string{"init", "probe", kind}, Env: []string{ProbeEnv + "=1"}, Dir: "/",
		Stdout: w, Stderr: w, SysProcAttr: &syscall.SysProcAttr{Cloneflags: flags, Setsid: true}}
	if flags&unix.CLONE_NEWUSER != 0 {
		m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(opts.UserRange.Base), Size: int(opts.UserRange.Size)}}
		cmd.SysProcAttr.UidMappings, cmd.SysProcAttr.GidMappings = m, m
		cmd.SysProcAttr.Credential = &syscall.Credential{} // its root, as the shim
	}
	ch, err := child.Start(opts.Starter, cmd)
	w.Close()
	if err != nil {
		return childResult{Check: Check{Name: kind, Why: errno.Name(err)}}
	}
	msg, _ := io.ReadAll(io.LimitReader(out, 4<<10))
	res := childResult{Check: Check{Name: kind}, lines: resultLines(msg)}
	select {
	case ws := <-ch:
		res.OK = ws.Exited() && ws.ExitStatus() == 0
		if !res.OK {
			res.Why = firstLine(msg, fmt.Sprintf("the probe child ended with status %#x", int(ws)))
		}
	case <-ctx.Done():
		unix.Kill(cmd.Process.Pid, unix.SIGKILL)
		<-ch
		res.Why = "the probe child did not finish in " + probeTimeout.String()
	}
	return res
}

// resultLines reads a child's "name: result" lines.
func resultLines(b []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			out[k] = v
		}
	}
	return out
}

func firstLine(b []byte, def string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if line == "" {
		return def
	}
	return line
}

func readSysctl(root, name string) string {
	b, err := os.ReadFile(filepath.Join(root, "/proc/sys", name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Cgroup filesystem magics (statfs f_type).
const (
	cgroup2Magic = 0x63677270
	cgroup1Magic = 0x27e0eb
)

// controllers are the cgroup controllers the cgroups rung needs.
var controllers = []string{"memory", "pids", "cpu"}

// probeCgroup finds the cgroup hierarchy at /sys/fs/cgroup and the
// controllers it offers: v2 (cgroup.controllers) or v1 (one mount per
// controller).
// ProbeCgroups is the probe's cgroup part alone, in this process (it
// reads files and starts nothing): PID 1 runs it early in the boot, to
// move itself into its cgroup before it starts tor. The Report has the
// hierarchy's version and the cgroup checks, nothing else.
func ProbeCgroups(root string) Report {
	var r Report
	r.Cgroup, r.Checks = probeCgroup(root)
	return r
}

func probeCgroup(root string) (string, []Check) {
	dir := filepath.Join(root, "/sys/fs/cgroup")
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "", cgroupMissing("no " + dir + " (" + errno.Name(err) + ")")
	}
	switch {
	case st.Type == cgroup2Magic:
		return "v2", cgroupV2(dir)
	case hasV1(dir):
		return "v1", cgroupV1(dir)
	}
	return "", cgroupMissing("no cgroup hierarchy mounted at " + dir)
}

func cgroupMissing(why string) []Check {
	out := []Check{{Name: "cgroup", Why: why}}
	for _, c := range controllers {
		out = append(out, Check{Name: c, Why: "no cgroups"})
	}
	return out
}

// cgroupV2 checks that a child cgroup can be made and which controllers
// the root offers.
func cgroupV2(dir string) []Check {
	out := []Check{{Name: "cgroup", OK: true}}
	probe := filepath.Join(dir, "allium.probe."+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(probe, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		out[0] = Check{Name: "cgroup", Why: "cannot make a cgroup: " + errno.Name(err)}
	} else {
		os.Remove(probe)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	have := strings.Fields(string(b))
	for _, c := range controllers {
		if slices.Contains(have, c) {
			out = append(out, Check{Name: c, OK: true})
		} else {
			out = append(out, Check{Name: c, Why: "not in " + filepath.Join(dir, "cgroup.controllers")})
		}
	}
	return out
}

func hasV1(dir string) bool {
	for _, c := range controllers {
		var st unix.Statfs_t
		if unix.Statfs(filepath.Join(dir, c), &st) == nil && st.Type == cgroup1Magic {
			return true
		}
	}
	return false
}

// cgroupV1 checks each controller's own hierarchy.
func cgroupV1(dir string) []Check {
	out := []Check{{Name: "cgroup", OK: true}}
	for _, c := range controllers {
		var st unix.Statfs_t
		if unix.Statfs(filepath.Join(dir, c), &st) == nil && st.Type == cgroup1Magic {
			out = append(out, Check{Name: c, OK: true})
		} else {
			out = append(out, Check{Name: c, Why: "no v1 hierarchy at " + filepath.Join(dir, c)})
		}
	}
	return out
}

// probeNftables asks the kernel for its nf_tables tables over netlink.
func probeNftables() Check {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return Check{Name: "nftables", Why: "netlink netfilter socket: " + errno.Name(err)}
	}
	defer unix.Close(fd)
	tv := unix.Timeval{Sec: 2}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	// nlmsghdr (len, type, flags, seq, pid) + nfgenmsg (family,
	// version, res_id): NFT_MSG_GETTABLE, a dump, any family.
	msg := make([]byte, unix.SizeofNlMsghdr+4)
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], uint16(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETTABLE))
	ne.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(msg[8:], 1)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return Check{Name: "nftables", Why: "netlink: " + errno.Name(err)}
	}
	buf := make([]byte, 64<<10)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return Check{Name: "nftables", Why: "netlink: " + errno.Name(err)}
	}
	if why := netlinkError(buf[:n]); why != "" {
		return Check{Name: "nftables", Why: why}
	}
	return Check{Name: "nftables", OK: true}
}

// netlinkError is the error of the first message of a netlink answer,
// or "".
func netlinkError(b []byte) string {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil || len(msgs) == 0 {
		return "netlink: an answer that does not parse"
	}
	m := msgs[0]
	if m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4 {
		return ""
	}
	code := int32(binary.NativeEndian.Uint32(m.Data))
	if code == 0 {
		return ""
	}
	return "nf_tables: " + errno.Name(syscall.Errno(-code))
}
