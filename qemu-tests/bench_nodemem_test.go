package qemutests

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"allium/api"
	"allium/internal/testkit"
)

// BenchmarkNodeMemory's setting: a small VPS, and the containers issue 9
// asks about.
const (
	nodeMemMiB     = 256 // the guest's memory
	nodeContainers = 10  // containers of one small busybox image
)

// memSample is what GET /v1/node says of the node's memory at one
// moment.
type memSample struct {
	node, nodePeak uint64 // the node's own cgroup, now and at most
	tasks          int    // its tasks: init, tor and their threads
	containers     uint64 // all the containers' groups together
	initRSS        uint64
	torRSS         uint64
	available      uint64 // the guest's MemAvailable
}

func memSampleOf(n api.Node) memSample {
	s := memSample{initRSS: n.Memory.InitRSS, available: n.Memory.Available}
	if c := n.Cgroup; c != nil {
		s.node, s.nodePeak, s.tasks, s.containers = c.Memory, c.MemoryPeak, c.Pids, c.ContainersMemory
	}
	if n.Tor != nil {
		s.torRSS = n.Tor.RSS
	}
	return s
}

// BenchmarkNodeMemory measures the memory of the node's own cgroup
// (init, tor and their helpers), as issue 9 asks, on an appliance booted
// with nodeMemMiB of memory and a data disk: once idle, with tor running
// and no container, and once nodeContainers containers of one busybox
// image (pushed once by the real cloud, then started under other names)
// run. Beside it: the containers' groups together, init's and tor's
// RSS, and the guest's MemAvailable, all read through `cloud info
// --json` in the same boot. One boot, whatever b.N is; memory, not
// time, so no rounds.
func BenchmarkNodeMemory(b *testing.B) {
	e := setup(b)
	load0 := testkit.LoadAverage()
	a := newAppliance(b, e, "nodemem", buildOpts{mem: nodeMemMiB})
	n := &appNode{appliance: a}
	n.v = a.boot(b, "boot1")
	image := filepath.Join(b.TempDir(), "idle.txz")
	pack(b, e, busyboxRoot(b, filepath.Join(b.TempDir(), "idle-root")), image, "--cmd", busybox+" sleep 1000000")

	// Idle: tor runs and init and tor are in their cgroup.
	idleNode, _ := n.v.waitNode(b, "tor running in the node's cgroup", func(n api.Node) bool {
		return n.Cgroup != nil && n.Tor != nil && n.Tor.PID > 0 && n.Tor.RSS > 0
	})
	idle := memSampleOf(idleNode)

	for i := range nodeContainers {
		name := fmt.Sprintf("idle%d", i+1)
		if r := n.cloud(b, "start", a.name, image, "--name", name); r.code != 0 {
			b.Fatalf("cloud start %s idle.txz --name %s = exit %d, %s, want 0", a.name, name, r.code, strings.TrimSpace(r.stderr))
		}
	}
	for i := range nodeContainers {
		n.waitContainer(b, fmt.Sprintf("idle%d", i+1), "running", running)
	}
	busyNode, _ := n.v.waitNode(b, "the node with its containers", func(n api.Node) bool { return n.Cgroup != nil })
	busy := memSampleOf(busyNode)
	load1 := testkit.LoadAverage()

	t := nodeMemTable{idle: idle, busy: busy, cgroup: *busyNode.Cgroup, total: busyNode.Memory.Total,
		load0: load0, load1: load1}
	t.print(os.Stdout)
	fmt.Printf("QEMU: %s\n\n", n.v.cmdline)
	t.report(b)
}

// nodeMemTable is what BenchmarkNodeMemory found.
type nodeMemTable struct {
	idle, busy   memSample
	cgroup       api.NodeCgroup // with the containers: what Protect set
	total        uint64         // the guest's MemTotal
	load0, load1 string
}

// perContainer is the containers' groups together, per container.
func (t nodeMemTable) perContainer() float64 {
	return float64(t.busy.containers) / nodeContainers
}

// nodeRatio is the node's cgroup with the containers against without.
func (t nodeMemTable) nodeRatio() float64 {
	if t.idle.node == 0 {
		return 0
	}
	return float64(t.busy.node) / float64(t.idle.node)
}

func (t nodeMemTable) print(w io.Writer) {
	fmt.Fprintf(w, "\nBenchmarkNodeMemory: one boot with %d MiB (TCG, data disk); %d containers of one busybox image (sleep)\n",
		nodeMemMiB, nodeContainers)
	fmt.Fprintf(w, "load average: %s at the start, %s at the end (2 cores)\n\n", t.load0, t.load1)
	header := fmt.Sprintf("%d containers", nodeContainers)
	fmt.Fprintf(w, "%-36s %14s %14s %10s\n", "", "0 containers", header, "added")
	row := func(name string, idle, busy uint64) {
		fmt.Fprintf(w, "%-36s %14.1f %14.1f %+10.1f\n", name, mib(idle), mib(busy), mib(busy)-mib(idle))
	}
	row("node cgroup memory now (MiB)", t.idle.node, t.busy.node)
	row("node cgroup memory peak (MiB)", t.idle.nodePeak, t.busy.nodePeak)
	fmt.Fprintf(w, "%-36s %14d %14d %+10d\n", "node cgroup tasks", t.idle.tasks, t.busy.tasks, t.busy.tasks-t.idle.tasks)
	row("containers' cgroups together (MiB)", t.idle.containers, t.busy.containers)
	row("init RSS (MiB)", t.idle.initRSS, t.busy.initRSS)
	row("tor RSS (MiB)", t.idle.torRSS, t.busy.torRSS)
	row("guest MemAvailable (MiB)", t.idle.available, t.busy.available)
	fmt.Fprintf(w, "\nguest MemTotal %.1f MiB: %.1f MiB guaranteed to the node, the containers capped at %.1f MiB together\n",
		mib(t.total), mib(t.cgroup.Guaranteed), mib(t.cgroup.ContainersMax))
	fmt.Fprintf(w, "per container: %.2f MiB (their groups together / %d); node cgroup with them / without: %.2fx\n",
		t.perContainer()/(1<<20), nodeContainers, t.nodeRatio())
	fmt.Fprintf(w, "node cgroup now with them / guaranteed: %.2f\n", float64(t.busy.node)/float64(max(t.cgroup.Guaranteed, 1)))
	fmt.Fprintf(w, "node cgroup now / (init RSS + tor RSS): %.2f idle, %.2f with them\n", t.idle.counted(), t.busy.counted())
	fmt.Fprintf(w, "(RSS counts the binaries' pages in the initramfs, which cgroup v2 charged to the root group when the kernel unpacked it)\n")
}

// counted is the share of init's and tor's RSS that their cgroup's
// memory amounts to.
func (s memSample) counted() float64 {
	return float64(s.node) / float64(max(s.initRSS+s.torRSS, 1))
}

func (t nodeMemTable) report(b *testing.B) {
	b.ReportMetric(0, "ns/op") // the whole run's time means nothing here
	b.ReportMetric(mib(t.idle.node), "node-idle-MiB")
	b.ReportMetric(mib(t.busy.node), "node-MiB")
	b.ReportMetric(mib(t.busy.nodePeak), "node-peak-MiB")
	b.ReportMetric(mib(t.busy.containers), "containers-MiB")
	b.ReportMetric(t.perContainer()/(1<<20), "per-container-MiB")
	b.ReportMetric(mib(t.busy.initRSS), "init-rss-MiB")
	b.ReportMetric(mib(t.busy.available), "available-MiB")
	b.ReportMetric(t.nodeRatio(), "node-ratio")
	b.ReportMetric(t.busy.counted(), "node-of-rss")
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }
