package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"allium/internal/testbin"
	"allium/internal/testkit"
	"allium/manifest"
	"allium/supervisor"
	"allium/supervisor/cgroup"
	"allium/supervisor/idmap"
	"allium/supervisor/isolation"
	"allium/supervisor/restart"
)

// BenchmarkStartRung is issue 9's start latency at each rung of the
// isolation ladder, from the node's decision to start to the workload's
// first instruction, against `crun run` of the same rootfs with the same
// features, measured in the same run.
//
//   - The workload is /stamp, 200 bytes of hand-assembled x86-64
//     (stampELF): its first instruction leads to clock_gettime
//     (CLOCK_MONOTONIC), and it then writes the time to /out/t and exits
//     125. No loader, no libc, no runtime runs before the clock is read.
//   - allium: a supervisor.Supervisor in this process with the real init
//     binary (make build's, or built here) as its shim, the real
//     Starter's contract (testkit.Starter), and a LogDir, as the node
//     runs containers. t0 is CLOCK_MONOTONIC just before Supervisor.Add
//     (the first start) or Supervisor.Start (the next ones): the node's
//     decision. Exit 125 leaves it exited, and the next Start is an
//     operator start. The cgroups rung gets a cgroup with a memory and
//     a pids limit where the host has a usable hierarchy.
//   - crun: `crun run` of a bundle whose root is the same rootfs, with
//     crun spec's defaults less what the rung does not do: chroot, no
//     namespaces and no mounts; namespaces, mount, pid, uts and ipc
//     (not network or cgroup) with /proc, /dev and /sys; userns, plus a
//     user namespace mapping 0 to 100000 (65536 ids); cgroups, plus a
//     cgroup with the same limits (cgroupfs); below cgroups,
//     --cgroup-manager=disabled. t0 is just before the fork of crun. On
//     a hybrid cgroup host crun runs from a thread whose mount namespace
//     has no cgroup2 mount (crun 1.8 refuses hybrid mode), so no
//     nsenter is in its time.
//
// Each of $ALLIUM_BENCH_STARTS rounds (default 200, whatever b.N is)
// starts every variant once, in a shuffled order. Rungs above
// supervisor.MaxRung have crun's numbers only. The table has the
// median and p90 of each, the ratio crun/allium of the medians (the
// goal: 3 or more at every rung, and the chroot rung under 1 ms), and
// the load average. $ALLIUM_BENCH_BASELINE_INIT, if set, is another
// init binary (say, main's) measured as a third variant in the same
// rounds, to compare a change before and after. Then ten containers run `sleep` at MaxRung, and the
// memory they cost the node is printed: this process's RSS before and
// after, and what stays resident per container besides the workload
// (at the namespaces rung, the shim as the container's PID 1).
func BenchmarkStartRung(b *testing.B) {
	testkit.NeedRoot(b)
	if runtime.GOARCH != "amd64" {
		b.Skip("the stamp workload is x86-64 machine code")
	}
	starts := benchEnvInt(b, "ALLIUM_BENCH_STARTS", 200)
	root := stampRootfs(b)
	cr := newCrunThread(b)
	initBin := testbin.Path(b, "init")
	load0 := testkit.LoadAverage()

	var rows []*rungRow
	for r := isolation.Chroot; r <= isolation.Cgroups; r++ {
		row := &rungRow{rung: r, root: root}
		if !row.setCgroups(b) {
			continue
		}
		row.crun = cr.bundle(b, row)
		if r <= supervisor.MaxRung {
			row.allium = newAlliumRung(b, initBin, row)
			if base := os.Getenv("ALLIUM_BENCH_BASELINE_INIT"); base != "" {
				row.base = newAlliumRung(b, base, row)
				row.base.spec.Name += "-baseline"
			}
		}
		rows = append(rows, row)
	}
	var vs []func()
	for _, row := range rows {
		vs = append(vs, func() { row.crunTimes = append(row.crunTimes, cr.start(b, row)) })
		if row.allium != nil {
			vs = append(vs, func() { row.alliumTimes = append(row.alliumTimes, row.allium.start(b)) })
		}
		if row.base != nil {
			vs = append(vs, func() { row.baseTimes = append(row.baseTimes, row.base.start(b)) })
		}
	}
	for range starts {
		rand.Shuffle(len(vs), func(i, j int) { vs[i], vs[j] = vs[j], vs[i] })
		for _, v := range vs {
			v()
		}
	}
	printRungs(os.Stdout, rows, starts, load0, testkit.LoadAverage())
	top := rows[0]
	for _, row := range rows {
		if row.allium != nil {
			top = row
		}
	}
	tenContainers(b, initBin, top).print(os.Stdout, top.rung)

	b.ReportMetric(0, "ns/op") // the whole run's time means nothing here
	for _, row := range rows {
		if row.allium != nil {
			b.ReportMetric(float64(benchMedian(row.alliumTimes).Microseconds()), row.rung.String()+"-µs")
			b.ReportMetric(benchMedian(row.crunTimes).Seconds()/benchMedian(row.alliumTimes).Seconds(), row.rung.String()+"-crun/allium")
		}
	}
}

// rungRow is one rung's setup and samples.
type rungRow struct {
	rung        isolation.Rung
	root        string            // the rootfs, shared by every variant
	cgroups     *cgroup.Hierarchy // allium's, at the cgroups rung
	allium      *alliumRung       // nil above supervisor.MaxRung
	base        *alliumRung       // $ALLIUM_BENCH_BASELINE_INIT's, or nil
	crun        string            // crun's bundle
	alliumTimes []time.Duration   // t0 to the workload's first instruction
	crunTimes   []time.Duration
	baseTimes   []time.Duration
}

// benchLimits are the limits of both sides at the cgroups rung.
var benchLimits = cgroup.Limits{Memory: 64 << 20, Pids: 64}

// setCgroups opens a hierarchy for the cgroups rung; false skips the
// rung where the host has none.
func (row *rungRow) setCgroups(b *testing.B) bool {
	if row.rung < isolation.Cgroups {
		return true
	}
	base := fmt.Sprintf("/allium-bench-%d", os.Getpid())
	h, err := cgroup.Open("/sys/fs/cgroup", base)
	if err != nil {
		fmt.Printf("BenchmarkStartRung: no cgroups rung: no usable cgroup hierarchy here: %v\n", err)
		return false
	}
	row.cgroups = h
	b.Cleanup(func() {
		for _, g := range []string{"containers", ""} {
			h.Group(g).Remove()
		}
	})
	return true
}

// stampRootfs is busyboxTree's rootfs with /stamp, /out (anyone may
// write there: the userns rung's root is not the host's) and the mount
// points of the namespaces rung.
func stampRootfs(b *testing.B) string {
	root := busyboxTree(b, 0)
	if err := os.WriteFile(filepath.Join(root, "stamp"), stampELF(), 0o755); err != nil {
		b.Fatal(err)
	}
	for _, d := range []string{"out", "proc", "sys", "dev"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(root, "out"), 0o777)
	// The userns rung's root (a host uid of its own) walks down to it.
	for d := root; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	return root
}

// stampELF is a static x86-64 executable of one page: it reads
// CLOCK_MONOTONIC first of all, writes the timespec (16 bytes) to
// /out/t and exits 125 ("do not restart me").
func stampELF() []byte {
	code := []byte{
		0x48, 0x83, 0xec, 0x10, // sub rsp, 16
		0xb8, 0xe4, 0x00, 0x00, 0x00, // mov eax, 228 (clock_gettime)
		0xbf, 0x01, 0x00, 0x00, 0x00, // mov edi, 1 (CLOCK_MONOTONIC)
		0x48, 0x89, 0xe6, // mov rsi, rsp
		0x0f, 0x05, // syscall
		0xb8, 0x02, 0x00, 0x00, 0x00, // mov eax, 2 (open)
		0x48, 0x8d, 0x3d, 0x29, 0x00, 0x00, 0x00, // lea rdi, [rip+41]: the path, after the code
		0xbe, 0x41, 0x02, 0x00, 0x00, // mov esi, O_WRONLY|O_CREAT|O_TRUNC
		0xba, 0xa4, 0x01, 0x00, 0x00, // mov edx, 0644
		0x0f, 0x05, // syscall
		0x89, 0xc7, // mov edi, eax
		0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1 (write)
		0x48, 0x89, 0xe6, // mov rsi, rsp
		0xba, 0x10, 0x00, 0x00, 0x00, // mov edx, 16
		0x0f, 0x05, // syscall
		0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax, 60 (exit)
		0xbf, 0x7d, 0x00, 0x00, 0x00, // mov edi, 125
		0x0f, 0x05, // syscall
		'/', 'o', 'u', 't', '/', 't', 0,
	}
	const base, hdr = 0x400000, 64 + 56 // the ELF header, one program header
	le := binary.LittleEndian
	b := make([]byte, hdr, hdr+len(code))
	copy(b, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1}) // 64-bit, little-endian, version 1
	le.PutUint16(b[16:], 2)                       // ET_EXEC
	le.PutUint16(b[18:], 0x3e)                    // EM_X86_64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], base+hdr) // the entry: the first instruction
	le.PutUint64(b[32:], 64)       // program headers' offset
	le.PutUint16(b[52:], 64)
	le.PutUint16(b[54:], 56)
	le.PutUint16(b[56:], 1)
	p := b[64:]
	le.PutUint32(p[0:], 1) // PT_LOAD of the whole file, read and execute
	le.PutUint32(p[4:], 5)
	le.PutUint64(p[16:], base)
	le.PutUint64(p[24:], base)
	le.PutUint64(p[32:], uint64(hdr+len(code)))
	le.PutUint64(p[40:], uint64(hdr+len(code)))
	le.PutUint64(p[48:], 0x1000)
	return append(b, code...)
}

// stampSince reads the stamp the workload left in root and removes it:
// the time from t0 to its first instruction.
func stampSince(b *testing.B, root string, t0 time.Duration) time.Duration {
	p := filepath.Join(root, "out/t")
	data, err := os.ReadFile(p)
	if err != nil || len(data) != 16 {
		b.Fatalf("the workload's stamp: %v (%d bytes)", err, len(data))
	}
	os.Remove(p)
	le := binary.LittleEndian
	return time.Duration(int64(le.Uint64(data))*1e9+int64(le.Uint64(data[8:]))) - t0
}

// monotonic is CLOCK_MONOTONIC, the clock the stamp reads.
func monotonic() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}

// alliumRung is one rung's supervisor and its one container.
type alliumRung struct {
	sup   *supervisor.Supervisor
	spec  supervisor.Spec
	added bool
	exits chan supervisor.Event
}

func newAlliumRung(b *testing.B, initBin string, row *rungRow) *alliumRung {
	a := &alliumRung{exits: make(chan supervisor.Event, 16)}
	a.sup = supervisor.New(supervisor.Options{Exe: initBin, Starter: testkit.Starter,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), OnEvent: a.onEvent})
	a.spec = supervisor.Spec{Name: "stamp-" + row.rung.String(), Root: row.root, Command: []string{"/stamp"},
		LogDir: b.TempDir(), Rung: row.rung, Policy: restart.Policy{Mode: manifest.RestartNever}}
	if row.rung >= isolation.Userns {
		a.spec.IDs = idmap.Range{Base: idmap.First, Size: idmap.Size} // the root stays the host's: /stamp is world-readable
	}
	if row.cgroups != nil {
		a.sup.UseCgroups(row.cgroups)
		a.spec.Limits = benchLimits
	}
	b.Cleanup(func() { removeAll(a.sup) })
	return a
}

func (a *alliumRung) onEvent(ev supervisor.Event) {
	if ev.Type == supervisor.EventExit || ev.Type == supervisor.EventError {
		a.exits <- ev
	}
}

// start starts the container once and waits for its exit.
func (a *alliumRung) start(b *testing.B) time.Duration {
	t0 := monotonic()
	var err error
	if !a.added {
		a.added = true
		err = a.sup.Add(a.spec, restart.History{}, true)
	} else {
		err = a.sup.Start(a.spec.Name)
	}
	if err != nil {
		b.Fatal(err)
	}
	select {
	case ev := <-a.exits:
		if ev.Type != supervisor.EventExit || ev.Exit == nil || ev.Exit.Code != 125 {
			b.Fatalf("%s: %s %s %+v, want exit 125", a.spec.Name, ev.Type, ev.Message, ev.Exit)
		}
	case <-time.After(30 * time.Second):
		b.Fatalf("%s: no exit within 30 s", a.spec.Name)
	}
	return stampSince(b, a.spec.Root, t0)
}

// crunThread runs crun from one locked thread, in a mount namespace
// without the cgroup2 mount where the host is hybrid.
type crunThread struct {
	path string
	do   chan func()
	n    int
}

func newCrunThread(b *testing.B) *crunThread {
	path, err := exec.LookPath("crun")
	if err != nil {
		b.Skip("crun not found, and it is the peer (apt-get install -y crun)")
	}
	c := &crunThread{path: path, do: make(chan func())}
	ready := make(chan error)
	go func() {
		// Never unlocked: the thread, and its namespace, end with the
		// goroutine. Forks from it inherit its mount namespace.
		runtime.LockOSThread()
		err := hideCgroup2()
		ready <- err
		if err != nil {
			return
		}
		for f := range c.do {
			f()
		}
	}()
	if err := <-ready; err != nil {
		b.Fatalf("a mount namespace without cgroup2 for crun: %v", err)
	}
	b.Cleanup(func() { close(c.do) })
	return c
}

// hideCgroup2 unmounts a hybrid host's cgroup2 in a mount namespace of
// the calling thread's own.
func hideCgroup2() error {
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup/unified", &st) != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		return nil
	}
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	return unix.Unmount("/sys/fs/cgroup/unified", unix.MNT_DETACH)
}

// start runs the rung's bundle once.
func (c *crunThread) start(b *testing.B, row *rungRow) time.Duration {
	c.n++
	args := []string{"--cgroup-manager=disabled"}
	if row.rung >= isolation.Cgroups {
		args = []string{"--cgroup-manager=cgroupfs"}
	}
	cmd := exec.Command(c.path, append(args, "run", "--bundle", row.crun, fmt.Sprintf("allium-bench-%d-%d", os.Getpid(), c.n))...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	var t0 time.Duration
	var err error
	done := make(chan struct{})
	c.do <- func() {
		defer close(done)
		t0 = monotonic()
		err = cmd.Run()
	}
	<-done
	var ee *exec.ExitError
	if err != nil && !(asExit(err, &ee) && ee.ExitCode() == 125) {
		b.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out.String())
	}
	return stampSince(b, row.root, t0)
}

func asExit(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*ee = e
	return ok
}

// bundle writes the rung's config.json (see BenchmarkStartRung) into a
// bundle directory and returns it.
func (c *crunThread) bundle(b *testing.B, row *rungRow) string {
	dir := b.TempDir()
	spec := crunSpec(b, c.path)
	crunRungSpec(spec, row)
	raw, err := json.MarshalIndent(spec, "", "\t")
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644)
	}
	if err != nil {
		b.Fatal(err)
	}
	return dir
}

// crunRungSpec trims crun spec's config to a rung's features.
func crunRungSpec(spec map[string]any, row *rungRow) {
	proc := spec["process"].(map[string]any)
	proc["args"], proc["terminal"] = []string{"/stamp"}, false
	spec["root"] = map[string]any{"path": row.root, "readonly": false}
	linux := spec["linux"].(map[string]any)
	delete(linux, "resources")
	if row.rung == isolation.Chroot {
		linux["namespaces"] = []any{}
		spec["mounts"] = []any{}
		delete(spec, "hostname")
		delete(linux, "maskedPaths")
		delete(linux, "readonlyPaths")
		return
	}
	ns := []any{map[string]any{"type": "mount"}, map[string]any{"type": "pid"},
		map[string]any{"type": "uts"}, map[string]any{"type": "ipc"}}
	var mounts []any
	for _, m := range spec["mounts"].([]any) {
		switch m.(map[string]any)["destination"] {
		case "/proc", "/dev", "/sys":
			mounts = append(mounts, m)
		}
	}
	if row.rung >= isolation.Userns {
		ns = append(ns, map[string]any{"type": "user"})
		ids := []any{map[string]any{"containerID": 0, "hostID": 100000, "size": 65536}}
		linux["uidMappings"], linux["gidMappings"] = ids, ids
		// sysfs needs a network namespace of the user namespace's own:
		// bind the host's, read-only, as crun's rootless spec does.
		for i, m := range mounts {
			if m.(map[string]any)["destination"] == "/sys" {
				mounts[i] = map[string]any{"destination": "/sys", "type": "none", "source": "/sys",
					"options": []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}
			}
		}
	}
	if row.rung >= isolation.Cgroups {
		linux["resources"] = map[string]any{"memory": map[string]any{"limit": benchLimits.Memory},
			"pids": map[string]any{"limit": benchLimits.Pids}}
		linux["cgroupsPath"] = fmt.Sprintf("/allium-bench-crun-%d", os.Getpid())
	}
	linux["namespaces"], spec["mounts"] = ns, mounts
}

func printRungs(w io.Writer, rows []*rungRow, starts int, load0, load1 string) {
	fmt.Fprintf(w, "\nBenchmarkStartRung: from the decision to start to the workload's first instruction (CLOCK_MONOTONIC),\n"+
		"%d starts of each, shuffled per round; allium: supervisor + the real init shim; crun run of the same rootfs\n"+
		"load average: %s at the start, %s at the end (2 cores)\n\n", starts, load0, load1)
	fmt.Fprintf(w, "%-11s %12s %12s %12s %12s %12s   %s\n", "rung", "allium p50", "allium p90", "crun p50", "crun p90", "crun/allium", "goal")
	ms := func(d []time.Duration, p int) string {
		if len(d) == 0 {
			return "-"
		}
		return fmt.Sprintf("%.3f ms", float64(benchPercentile(d, p).Microseconds())/1e3)
	}
	for _, row := range rows {
		ratio, goal := "-", "(rung not run by this supervisor: MaxRung is "+supervisor.MaxRung.String()+")"
		if len(row.alliumTimes) > 0 {
			r := benchMedian(row.crunTimes).Seconds() / benchMedian(row.alliumTimes).Seconds()
			ratio, goal = fmt.Sprintf("%.2fx", r), fmt.Sprintf(">= 3x: %s", met(r >= 3))
			if row.rung == isolation.Chroot {
				goal += fmt.Sprintf("; < 1 ms: %s", met(benchMedian(row.alliumTimes) < time.Millisecond))
			}
		}
		fmt.Fprintf(w, "%-11s %12s %12s %12s %12s %12s   %s\n", row.rung, ms(row.alliumTimes, 50), ms(row.alliumTimes, 90),
			ms(row.crunTimes, 50), ms(row.crunTimes, 90), ratio, goal)
	}
	if os.Getenv("ALLIUM_BENCH_BASELINE_INIT") == "" {
		return
	}
	fmt.Fprintf(w, "\nthe same rounds with $ALLIUM_BENCH_BASELINE_INIT as the shim (before / after):\n")
	fmt.Fprintf(w, "%-11s %12s %12s %12s %12s %12s\n", "rung", "before p50", "before p90", "after p50", "after p90", "before/after")
	for _, row := range rows {
		if len(row.baseTimes) > 0 {
			fmt.Fprintf(w, "%-11s %12s %12s %12s %12s %11.2fx\n", row.rung, ms(row.baseTimes, 50), ms(row.baseTimes, 90),
				ms(row.alliumTimes, 50), ms(row.alliumTimes, 90), benchMedian(row.baseTimes).Seconds()/benchMedian(row.alliumTimes).Seconds())
		}
	}
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func removeAll(sup *supervisor.Supervisor) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, st := range sup.List() {
		if err := sup.Remove(ctx, st.Name); err != nil && st.PID > 0 {
			unix.Kill(-st.PID, unix.SIGKILL)
		}
	}
}
