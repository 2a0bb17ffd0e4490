package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"allium/internal/testkit"
	"allium/manifest"
	"allium/supervisor/idmap"
	"allium/supervisor/isolation"
	"allium/supervisor/restart"

	"golang.org/x/sys/unix"
)

// The root tier at the namespaces rung: the shim as the container's
// PID 1, its mounts, its signals and its exit status.

// nsRoot is busyboxRoot with the applets the namespace tests use.
func nsRoot(t *testing.T) string {
	t.Helper()
	root := busyboxRoot(t)
	for _, a := range []string{"ls", "hostname", "kill", "mount", "mkdir", "grep", "touch", "readlink", "reboot"} {
		os.Symlink("busybox", filepath.Join(root, "bin", a))
	}
	return root
}

var never = restart.Policy{Mode: manifest.RestartNever}

// The same workload's exit comes back at both rungs: its code as it is,
// and a kill by a signal, which at the namespaces rung is 128+signal
// (the shim, PID 1 of its namespace, cannot die of the workload's
// signal: see shim_ns_linux.go).
func TestRootNsExitStatus(t *testing.T) {
	testkit.NeedRoot(t)
	root := nsRoot(t)
	h := newRootHarness(t)
	tests := []struct {
		rung     isolation.Rung
		script   string
		code     int
		signal   string
		fromName string
	}{
		{isolation.Chroot, "exit 3", 3, "", "c3"},
		{isolation.Namespaces, "exit 3", 3, "", "n3"},
		{isolation.Chroot, "kill -9 $$", 137, "SIGKILL", "c9"},
		{isolation.Namespaces, "kill -9 $$", 137, "", "n9"},
		{isolation.Namespaces, "kill -TERM $$", 143, "", "n15"},
	}
	for i, tt := range tests {
		h.add(Spec{Name: tt.fromName, Root: root, Rung: tt.rung, Policy: never, Command: []string{"sh", "-c", tt.script}})
		ex := h.waitMatch("exit of "+tt.fromName, 1, func(ev Event) bool {
			return ev.Type == EventExit && ev.Container == tt.fromName
		})[0].Exit
		if ex.Code != tt.code || ex.Signal != tt.signal {
			t.Errorf("%d: %s at %v: exit %+v, want code %d signal %q", i, tt.script, tt.rung, ex, tt.code, tt.signal)
		}
	}
}

// checks is a workload that reports what it sees, one "key value" line
// each, with shell builtins where it can, so that no process of its own
// shows in /proc.
const checks = `
pids=; for p in /proc/[0-9]*; do pids="$pids ${p#/proc/}"; done; echo pids$pids
echo self $$
read comm < /proc/1/comm; echo init $comm
echo hostname $(hostname)
( echo h > /proc/sysrq-trigger ) 2>/dev/null && echo sysrq writable || echo sysrq refused
( echo x > /proc/sys/kernel/hostname ) 2>/dev/null && echo procsys writable || echo procsys refused
if [ ! -e /proc/kcore ]; then echo kcore absent; elif [ -c /proc/kcore ]; then echo kcore masked; else echo kcore visible; fi
[ -c /proc/keys ] && echo keys masked || echo keys visible
touch /sys/kernel/x 2>/dev/null && echo sys writable || echo sys refused
mkdir -p /mnt; mount -t tmpfs x /mnt 2>/dev/null && echo mount allowed || echo mount refused
echo dev $(ls /dev)
echo pts $(ls /dev/pts)
echo ptmx $(readlink /dev/ptmx)
[ "$(ls /..)" = "$(ls /)" ] && echo dotdot root || echo dotdot other
( exec 3>>/proc/1/exe ) 2>/dev/null && echo exe writable || echo exe refused
( exec 3</proc/1/exe ) 2>/dev/null && echo exeread readable || echo exeread refused
read a b c < /proc/self/uid_map; echo uidmap $a $b $c
touch /made && echo made ok
while read k v; do case $k in CapBnd:) bnd=$v;; CapInh:) inh=$v;; CapAmb:) amb=$v;; NoNewPrivs:) nnp=$v;; esac; done < /proc/self/status
echo capbnd $bnd; echo capinh $inh; echo capamb $amb; echo nnp $nnp
reboot -f 2>/dev/null; echo reboot survived
[ -e /sys/fs/cgroup/memory ] || [ -e /sys/fs/cgroup/cgroup.procs ] && echo cgroupfs visible || echo cgroupfs hidden
while read dev mnt rest; do echo mnt $mnt $rest; done < /proc/mounts
echo done
exec sleep 1000
`

// Inside the namespaces and userns rungs, a root workload sees its own
// processes only, its own hostname, a masked /proc, a read-only /sys, a
// minimal /dev, and nothing of the node's filesystem; it may not mount,
// nor open the node's init binary through /proc/1/exe (runc's
// CVE-2019-5736). At the userns rung its uid 0 is the range's first id:
// in its uid_map, and on the file it creates, seen from the node.
func TestRootNsInside(t *testing.T) {
	testkit.NeedRoot(t)
	ids := idmap.Range{Base: idmap.First + 7*idmap.Size, Size: idmap.Size}
	for _, rung := range []isolation.Rung{isolation.Namespaces, isolation.Userns} {
		t.Run(rung.String(), func(t *testing.T) {
			root, logs := nsRoot(t), t.TempDir()
			spec := Spec{Name: "inside", Root: root, LogDir: logs, Rung: rung, Command: []string{"sh", "-c", checks}}
			h := newRootHarness(t)
			uidmap, owner := "0 0 4294967295", uint32(0)
			if rung >= isolation.Userns {
				usernsReady(t, h, root, ids)
				spec.IDs, uidmap, owner = ids, fmt.Sprintf("0 %d 65536", ids.Base), ids.Base
			}
			h.add(spec)
			got, mounts := insideReport(t, logs)
			kcore := "masked"
			if _, err := os.Stat("/proc/kcore"); err != nil {
				kcore = "absent" // a kernel without CONFIG_PROC_KCORE
			}
			// The workload is the container's only process but the shim; its
			// pid is not 2: the shim's threads took the first pids.
			for k, want := range map[string]string{
				"pids": "1 " + got["self"], "hostname": "inside", "keys": "masked",
				"sysrq": "refused", "procsys": "refused", "kcore": kcore, "sys": "refused", "mount": "refused",
				"dev": "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero",
				"pts": "ptmx", "ptmx": "pts/ptmx", "dotdot": "root", "exe": "refused", "exeread": "refused",
				"uidmap": uidmap, "made": "ok", "cgroupfs": "hidden", "reboot": "survived",
				"capinh": "0000000000000000", "capamb": "0000000000000000", "nnp": "1",
			} {
				if got[k] != want {
					t.Errorf("inside: %s = %q, want %q", k, got[k], want)
				}
			}
			// It may not load modules, set the clock or reboot: none of
			// those capabilities is in its bounding set (and reboot(2)
			// above, in a pid namespace, would have ended the container).
			bnd, err := strconv.ParseUint(got["capbnd"], 16, 64)
			for _, c := range []uint{unix.CAP_SYS_MODULE, unix.CAP_SYS_TIME, unix.CAP_SYS_BOOT, unix.CAP_SYS_ADMIN} {
				if err != nil || bnd&(1<<c) != 0 {
					t.Errorf("inside: CapBnd %q (%v) has capability %d; want none of module, time, boot, admin", got["capbnd"], err, c)
				}
			}
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(root, "made"), &st); err != nil || st.Uid != owner || st.Gid != owner {
				t.Errorf("the file the container's root made: owner %d:%d (%v), want %d:%d", st.Uid, st.Gid, err, owner, owner)
			}
			checkMounts(t, mounts)
		})
	}
}

// insideReport reads the checks script's "key value" lines, and the
// mounts it listed.
func insideReport(t *testing.T, logs string) (got map[string]string, mounts []string) {
	got = map[string]string{}
	for _, l := range waitLog(t, logs, "stdout done") {
		_, _, text := parseLine(t, l)
		k, v, _ := strings.Cut(text, " ")
		if k == "mnt" {
			mounts = append(mounts, v)
		}
		got[k] = v
	}
	return got, mounts
}

// usernsReady makes what the userns rung needs of a test: root's files
// owned by ids, as idmap would make them; root's parent and the shim's
// binary reachable by the range's uids, which hold no privilege over
// the node's 0700 temporary directories.
func usernsReady(t *testing.T, h *rootHarness, root string, ids idmap.Range) {
	t.Helper()
	if err := idmap.Shift(root, idmap.Host, ids); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(root); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	exe, err := os.ReadFile(h.sup.opts.Exe)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	h.sup.opts.Exe = filepath.Join(dir, "init")
	if err := os.WriteFile(h.sup.opts.Exe, exe, 0o755); err != nil {
		t.Fatal(err)
	}
}

// checkMounts checks the container's /proc/mounts: only the rung's own
// mounts, /sys and the masks read-only.
func checkMounts(t *testing.T, mounts []string) {
	t.Helper()
	want := map[string]string{"/": "", "/proc": "rw", "/sys": "ro", "/proc/sys": "ro", "/proc/sysrq-trigger": "ro",
		"/proc/kcore": "", "/dev": "rw", "/dev/null": "", "/dev/pts": "rw", "/dev/shm": "rw"}
	seen := map[string]bool{}
	for _, m := range mounts {
		f := strings.Fields(m) // mount point, type, options
		if len(f) < 3 {
			continue
		}
		mnt, opts := f[0], strings.Split(f[2], ",")
		seen[mnt] = true
		if !strings.HasPrefix(mnt, "/proc") && !strings.HasPrefix(mnt, "/dev") && mnt != "/" && mnt != "/sys" && mnt != "/mnt" &&
			!strings.HasPrefix(mnt, "/sys/") {
			t.Errorf("mount %q: not one of the container's (the node's mounts should be gone)", m)
		}
		if strings.HasPrefix(mnt, "/sys/") && opts[0] != "ro" {
			t.Errorf("mount %q: below the node's /sys (userns rung) and not read-only", m)
		}
		if w := want[mnt]; w != "" && opts[0] != w {
			t.Errorf("mount %q: options %v, want %s", m, opts, w)
		}
	}
	for mnt := range want {
		if _, err := os.Stat(mnt); err != nil {
			continue // not on this kernel: nothing to mask
		}
		if !seen[mnt] {
			t.Errorf("mounts lack %s: %q", mnt, mounts)
		}
	}
}

// kill -9 -1 by a root workload kills its namespace, not the node: a
// neighbour process keeps running.
func TestRootNsKillAll(t *testing.T) {
	testkit.NeedRoot(t)
	root, logs := nsRoot(t), t.TempDir()
	neighbour := exec.Command("sleep", "1000")
	if err := neighbour.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { neighbour.Process.Kill(); neighbour.Wait() }()
	h := newRootHarness(t)
	h.add(Spec{Name: "killer", Root: root, LogDir: logs, Rung: isolation.Namespaces, Policy: never,
		Command: []string{"sh", "-c", "sleep 1000 & kill -9 -1; echo killed; exit 5"}})
	waitLog(t, logs, "stdout killed")
	if ex := h.waitFor(EventExit, 1)[0].Exit; ex.Code != 5 {
		t.Errorf("exit = %+v, want 5 (kill -1 spares the killer and the shim)", ex)
	}
	if err := neighbour.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("neighbour %d after kill -9 -1 in the container: %v, want alive", neighbour.Process.Pid, err)
	}
}

// A stop sends SIGTERM once to the workload, through the shim, and the
// workload's own exit code comes back.
func TestRootNsStopGrace(t *testing.T) {
	testkit.NeedRoot(t)
	root, logs := nsRoot(t), t.TempDir()
	h := newRootHarness(t)
	h.add(Spec{Name: "grace", Root: root, LogDir: logs, Rung: isolation.Namespaces, Command: []string{"sh", "-c",
		`n=0; trap 'n=$((n+1)); echo TERM $n' TERM; echo up; while [ $n -lt 1 ]; do sleep 0.05; done; sleep 0.5; echo done $n; exit 7`}})
	waitLog(t, logs, "stdout up")
	ctx, cancel := context.WithTimeout(context.Background(), rootWait)
	defer cancel()
	if err := h.sup.Stop(ctx, "grace"); err != nil {
		t.Fatal(err)
	}
	if ex := h.waitFor(EventExit, 1)[0]; ex.Exit.Code != 7 || ex.State != Stopped {
		t.Errorf("exit = %+v in %v, want code 7, stopped", ex.Exit, ex.State)
	}
	lines := waitLog(t, logs, "stdout done")
	if all := strings.Join(lines, "\n"); !strings.Contains(all, "stdout done 1") || strings.Contains(all, "TERM 2") {
		t.Errorf("log = %q, want SIGTERM once", lines)
	}
}

// A workload ignoring SIGTERM is killed with its whole namespace once
// the stop timeout passes: nothing of it is left on the node.
func TestRootNsStopEscalates(t *testing.T) {
	testkit.NeedRoot(t)
	root, logs := nsRoot(t), t.TempDir()
	h := newRootHarness(t)
	shim := h.add(Spec{Name: "stubborn", Root: root, LogDir: logs, Rung: isolation.Namespaces, StopTimeout: 300 * time.Millisecond,
		Command: []string{"sh", "-c", `trap "" TERM; sleep 1000 & echo child $!; wait`}})
	waitLog(t, logs, "stdout child ")
	procs := descendants(shim)
	if len(procs) != 2 {
		t.Fatalf("processes under the shim %d = %v, want the workload and its child", shim, procs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), rootWait)
	defer cancel()
	if err := h.sup.Stop(ctx, "stubborn"); err != nil {
		t.Fatal(err)
	}
	if ex := h.waitFor(EventExit, 1)[0]; ex.Exit.Signal != "SIGKILL" || ex.State != Stopped {
		t.Errorf("exit = %+v in %v, want killed by SIGKILL, stopped", ex.Exit, ex.State)
	}
	for _, pid := range append(procs, shim) {
		waitDead(t, pid)
	}
}

// descendants are pid's descendants on the node, by /proc's children
// lists.
func descendants(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(s); err == nil {
				out = append(out, c)
				out = append(out, descendants(c)...)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Orphans of the namespace are reaped by the shim; when the workload
// exits, the shim exits with its code at once, and what is left in the
// namespace dies with it.
func TestRootNsOrphans(t *testing.T) {
	testkit.NeedRoot(t)
	root, logs := nsRoot(t), t.TempDir()
	h := newRootHarness(t)
	h.add(Spec{Name: "orphans", Root: root, LogDir: logs, Rung: isolation.Namespaces, Policy: never, Command: []string{"sh", "-c", `
(sleep 0.1 &); (sleep 1000 &); sleep 0.5
for s in /proc/[0-9]*/stat; do read l < $s; case "$l" in *") Z "*) echo zombie $l;; esac; done
echo checked; exit 4`}})
	start := time.Now()
	ex := h.waitFor(EventExit, 1)[0].Exit
	if ex.Code != 4 || time.Since(start) > 10*time.Second {
		t.Errorf("exit %+v after %v, want 4 without waiting for the orphan sleeping 1000 s", ex, time.Since(start))
	}
	lines := waitLog(t, logs, "stdout checked")
	if all := strings.Join(lines, "\n"); strings.Contains(all, "zombie") {
		t.Errorf("log = %q, want no zombie", lines)
	}
}

// An image's symlink at a mount point (/proc -> /etc) is refused, not
// followed: mount(2) given the path would mount over its target, inside
// the root or on the node.
func TestOpenInRefusesSymlinks(t *testing.T) {
	root := t.TempDir()
	os.Symlink("/etc", filepath.Join(root, "proc"))
	os.MkdirAll(filepath.Join(root, "dev"), 0o755)
	os.Symlink("/", filepath.Join(root, "dev/pts"))
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for _, rel := range []string{"proc", "proc/sys", "dev/pts"} {
		if got, err := openIn(fd, rel, true, false); !errors.Is(err, errSymlink) {
			unix.Close(got)
			t.Errorf("openIn(%s) = %v, want errSymlink", rel, err)
		}
	}
	got, err := openIn(fd, "sys", true, false)
	if err != nil {
		t.Fatalf("openIn(sys, create) = %v", err)
	}
	unix.Close(got)
	if fi, err := os.Lstat(filepath.Join(root, "sys")); err != nil || !fi.IsDir() {
		t.Errorf("openIn(sys, create) made %v, %v; want a directory", fi, err)
	}
}

// At the namespaces rung, a root whose /proc is a symlink fails before
// the workload runs, saying why.
func TestRootNsSymlinkedProc(t *testing.T) {
	testkit.NeedRoot(t)
	root := nsRoot(t)
	os.Symlink("/etc", filepath.Join(root, "proc"))
	h := newRootHarness(t)
	h.add(Spec{Name: "link", Root: root, Rung: isolation.Namespaces, Command: []string{"true"}})
	h.waitFor(EventError, 1)
	st, _ := h.sup.Status("link")
	if st.State != Failed || st.LastExit == nil || st.LastExit.Code != ExitShimRoot || !strings.Contains(st.Error, "/proc: is a symlink") {
		t.Errorf("status %v, exit %v, error %q; want failed, exit %d, /proc: is a symlink", st.State, st.LastExit, st.Error, ExitShimRoot)
	}
}

func TestExitCode(t *testing.T) {
	for _, tt := range []struct {
		ws   unix.WaitStatus
		want int
	}{{3 << 8, 3}, {0, 0}, {unix.WaitStatus(unix.SIGKILL), 137}, {unix.WaitStatus(unix.SIGTERM) | 0x80, 143}} {
		if got := exitCode(tt.ws); got != tt.want {
			t.Errorf("exitCode(%#x) = %d, want %d", int(tt.ws), got, tt.want)
		}
	}
}

// The workload has the chroot rung's privileges at the namespaces rung:
// no_new_privs, no capabilities, its user and groups, its rlimits, no
// ignored or blocked signal, in a session of its own.
func TestRootNsIdentity(t *testing.T) {
	testkit.NeedRoot(t)
	root := nsRoot(t)
	h := newRootHarness(t)
	shim := h.add(Spec{Name: "who", Root: root, Rung: isolation.Namespaces, UID: 1000, GID: 1000, Groups: []uint32{2000},
		Rlimits: map[string]uint64{"nofile": 64}, Command: []string{"sleep", "1000"}})
	h.waitFor(EventReady, 1)
	procs := descendants(shim)
	if len(procs) != 1 {
		t.Fatalf("processes under the shim = %v, want the workload", procs)
	}
	pid, st := procs[0], procStatus(t, procs[0])
	for k, want := range map[string]string{
		"NoNewPrivs": "1", "CapBnd": "0000000000000000", "CapEff": "0000000000000000",
		"CapInh": "0000000000000000", "CapAmb": "0000000000000000",
		"Uid": "1000 1000 1000 1000", "Gid": "1000 1000 1000 1000", "Groups": "2000",
		"SigBlk": "0000000000000000", "SigIgn": "0000000000000000",
	} {
		if st[k] != want {
			t.Errorf("/proc/%d/status %s = %q, want %q", pid, k, st[k], want)
		}
	}
	if sid, _ := unix.Getsid(pid); sid != pid {
		t.Errorf("session of %d = %d, want its own", pid, sid)
	}
	limits, _ := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if !strings.Contains(string(limits), "Max open files            64                   64") {
		t.Errorf("/proc/%d/limits = %s, want nofile 64", pid, limits)
	}
	if shimSt := procStatus(t, shim); shimSt["NSpid"] != fmt.Sprintf("%d 1", shim) {
		t.Errorf("shim NSpid = %q, want %d 1 (PID 1 of its namespace)", shimSt["NSpid"], shim)
	}
}

// In a user namespace the shim may not raise a hard limit: a manifest's
// nofile above the node's hard limit starts only because PID 1 raised
// its own to fs.nr_open first (RaiseHardLimits), as this test does.
// Where this machine denies root CAP_SYS_RESOURCE (a sandbox), it
// checks the other side: the container fails and says why.
func TestRootUsernsRlimits(t *testing.T) {
	testkit.NeedRoot(t)
	var before unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &before)
	raised := RaiseHardLimits("/proc/sys/fs/nr_open")
	want := before.Max + 1000
	root, logs := nsRoot(t), t.TempDir()
	h := newRootHarness(t)
	ids := idmap.Range{Base: idmap.First + 9*idmap.Size, Size: idmap.Size}
	usernsReady(t, h, root, ids)
	h.add(Spec{Name: "limits", Root: root, LogDir: logs, Rung: isolation.Userns, IDs: ids, Policy: never,
		Rlimits: map[string]uint64{"nofile": want}, Command: []string{"sh", "-c", "echo nofile $(ulimit -n)"}})
	if raised == nil {
		waitLog(t, logs, fmt.Sprintf("stdout nofile %d", want))
		return
	}
	t.Logf("%v: checking the refusal instead", raised)
	ev := h.waitMatch("the failure", 1, func(ev Event) bool { return ev.Type == EventError && ev.Container == "limits" })[0]
	if !strings.Contains(ev.Message, fmt.Sprintf("setrlimit nofile %d", want)) {
		t.Errorf("error = %q, want it to name setrlimit nofile %d", ev.Message, want)
	}
}
