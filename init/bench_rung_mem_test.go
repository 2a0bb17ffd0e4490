package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"allium/internal/testkit"
	"allium/supervisor"
	"allium/supervisor/idmap"
	"allium/supervisor/isolation"
	"allium/supervisor/restart"
)

// tenMemory is what ten running containers cost the node, in bytes.
type tenMemory struct {
	rssBefore, rssAfter uint64 // this process (the supervisor's side): VmRSS
	stayRSS, stayPSS    uint64 // what stays per container besides the workload, summed over ten
	workRSS, workPSS    uint64 // the ten workloads themselves
	cgroupMemory        uint64 // the ten containers' cgroups, where they have one
}

// tenContainers runs ten containers of `sleep 1000` at row's rung, as
// the node would, and measures the memory they cost.
func tenContainers(b *testing.B, initBin string, row *rungRow) tenMemory {
	var m tenMemory
	ready := make(chan supervisor.Event, 64)
	sup := supervisor.New(supervisor.Options{Exe: initBin, Starter: testkit.Starter,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), OnEvent: func(ev supervisor.Event) {
			if ev.Type == supervisor.EventReady || ev.Type == supervisor.EventError || ev.Type == supervisor.EventExit {
				ready <- ev
			}
		}})
	defer removeAll(sup)
	if row.cgroups != nil {
		sup.UseCgroups(row.cgroups)
	}
	m.rssBefore = statusKB(b, os.Getpid(), "VmRSS:")
	for i := range 10 {
		spec := supervisor.Spec{Name: fmt.Sprintf("sleep%d", i), Root: row.root, Command: []string{"/bin/sleep", "1000"},
			LogDir: b.TempDir(), Rung: row.rung}
		if row.rung >= isolation.Userns {
			spec.IDs = idmap.Range{Base: idmap.First + uint32(i)*idmap.Size, Size: idmap.Size} // one range each, as on a node
		}
		if row.cgroups != nil {
			spec.Limits = benchLimits
		}
		if err := sup.Add(spec, restart.History{}, true); err != nil {
			b.Fatal(err)
		}
		select {
		case ev := <-ready:
			if ev.Type != supervisor.EventReady {
				b.Fatalf("%s: %s %s", spec.Name, ev.Type, ev.Message)
			}
		case <-time.After(30 * time.Second):
			b.Fatalf("%s: not running within 30 s", spec.Name)
		}
	}
	time.Sleep(500 * time.Millisecond) // let the shims settle
	m.rssAfter = statusKB(b, os.Getpid(), "VmRSS:")
	for _, st := range sup.List() {
		// The container's first process is the shim at the namespaces
		// rung (its child is the workload) and the workload at chroot.
		kids := children(st.PID)
		work := st.PID
		if len(kids) == 1 {
			work = kids[0]
			m.stayRSS += statusKB(b, st.PID, "VmRSS:")
			m.stayPSS += rollupKB(b, st.PID, "Pss:")
		}
		m.workRSS += statusKB(b, work, "VmRSS:")
		m.workPSS += rollupKB(b, work, "Pss:")
		if cs, ok, err := sup.Stats(st.Name); ok && err == nil {
			m.cgroupMemory += cs.Memory
		}
	}
	return m
}

func (m tenMemory) print(w io.Writer, rung fmt.Stringer) {
	mb := func(n uint64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
	fmt.Fprintf(w, "\nten containers of `sleep 1000` (busybox) at the %s rung:\n", rung)
	fmt.Fprintf(w, "  the supervising process's VmRSS: %s before, %s with ten running\n", mb(m.rssBefore), mb(m.rssAfter))
	fmt.Fprintf(w, "  resident per container besides the workload (the shim as PID 1 of its namespaces), ten summed: "+
		"VmRSS %s, PSS %s\n", mb(m.stayRSS), mb(m.stayPSS))
	fmt.Fprintf(w, "  the ten workloads: VmRSS %s, PSS %s\n", mb(m.workRSS), mb(m.workPSS))
	if m.cgroupMemory > 0 {
		fmt.Fprintf(w, "  the ten containers' cgroups: %s\n", mb(m.cgroupMemory))
	}
}

// children are a process's children (its main thread's).
func children(pid int) []int {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var out []int
	for _, f := range strings.Fields(string(data)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// statusKB is a "NAME: N kB" line of /proc/PID/status, in bytes.
func statusKB(b *testing.B, pid int, name string) uint64 {
	return kbLine(b, fmt.Sprintf("/proc/%d/status", pid), name)
}

// rollupKB is a line of /proc/PID/smaps_rollup, in bytes.
func rollupKB(b *testing.B, pid int, name string) uint64 {
	return kbLine(b, fmt.Sprintf("/proc/%d/smaps_rollup", pid), name)
}

func kbLine(b *testing.B, path, name string) uint64 {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == name {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			return n << 10
		}
	}
	b.Fatalf("%s: no %s line", path, name)
	return 0
}
