package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"allium/api"
	"allium/internal/testbin"
	"allium/internal/testkit"
)

// BenchmarkPushToRunning is issue 3's push-to-running latency: a ~5 MB
// image (the host's static busybox and ~3 MB of text files; mkimage
// pack's multi-block .txz, ~2 MB) whose command is
// `busybox httpd -f -p PORT`, with no readiness probe.
//
//   - allium: `cloud start 127.0.0.1:PORT app.txz --node-key ...` over
//     loopback TCP to the real init, timed until it returns, which is
//     when the node reports the container running (cloud hashes the
//     file, uploads it, the node checks the digest and unpacks it in
//     its helper, mounts the container's overlay and starts it through
//     the shim, and cloud polls the state: at 0.1 s, then 0.2, 0.4...).
//     "node started" is the container's start time as the node records
//     it, from the same t0: the latency without cloud's polling.
//   - peer: `bsdtar -xf app.txz -C BUNDLE` (BUNDLE/rootfs), writing
//     `crun spec`'s config.json (the same command, no terminal), then
//     `crun run -d`, timed until it returns, which is when the process
//     is started. On a hybrid cgroup host crun runs through nsenter in
//     a mount namespace without the cgroup2 mount (crun 1.8 refuses
//     hybrid mode); nsenter's exec is in the peer's time.
//
// Every round ($ALLIUM_BENCH_ROUNDS, default 7, whatever b.N is) packs
// the image afresh with one file changed, so the node has never seen its
// digest and the upload really happens, and runs both sides, alternating
// which goes first. Between rounds (untimed) Allium's container is
// stopped and crun's deleted; nothing is removed from the disk until
// the end.
func BenchmarkPushToRunning(b *testing.B) {
	requireRoot(b)
	if _, err := exec.LookPath("crun"); err != nil {
		b.Skip("crun not found, and it is the peer (apt-get install -y crun)")
	}
	mkimage := testbin.Path(b, "mkimage")
	tree := busyboxTree(b, 3<<20)
	disk := testkit.Ext4(b, 2<<30)
	cr := newCrun(b) // after the mount: its namespace is a copy
	n := startBenchNode(b, disk)
	rounds := benchEnvInt(b, "ALLIUM_BENCH_ROUNDS", 7)

	args := []string{"/bin/busybox", "httpd", "-f", "-p", strconv.Itoa(freePort(b)), "-h", "/www"}
	config := cr.config(b, args)
	images, peer := b.TempDir(), filepath.Join(disk, "peer")
	if err := os.Mkdir(peer, 0o755); err != nil {
		b.Fatal(err)
	}
	log, err := os.Create(filepath.Join(images, "crun.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer log.Close()

	var s pushSamples
	for i := range rounds {
		img := filepath.Join(images, fmt.Sprintf("app%d.txz", i))
		if err := os.WriteFile(filepath.Join(tree, "www/round.txt"), fmt.Appendf(nil, "round %d\n", i), 0o644); err != nil {
			b.Fatal(err)
		}
		benchPack(b, mkimage, tree, img, "--cmd", strings.Join(args, " "), "--name", "app")
		s.size = benchFileSize(img)
		runAllium := func() { s.allium(b, n, img, fmt.Sprintf("app%d", i)) }
		runPeer := func() { s.peer(b, cr, log, img, config, filepath.Join(peer, strconv.Itoa(i))) }
		if i%2 == 0 {
			runAllium()
			runPeer()
		} else {
			runPeer()
			runAllium()
		}
	}
	s.print(os.Stdout, rounds)
	s.report(b)
}

// pushSamples are BenchmarkPushToRunning's times, round by round.
type pushSamples struct {
	size                    int64
	cloud, started, unpack  []time.Duration
	bsdtar, crun, peerTotal []time.Duration
}

func (s *pushSamples) allium(b *testing.B, n *benchNode, img, name string) {
	t0 := time.Now()
	s.cloud = append(s.cloud, n.cloudStart(b, img, name))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := n.unix().Container(ctx, name)
	if err != nil {
		b.Fatal(err)
	}
	s.started = append(s.started, c.Started.Sub(t0))
	s.unpack = append(s.unpack, n.unpackTook(b, c.Image))
	n.stop(b, name)
}

// unpackTook reads how long the node's unpack helper took for digest
// from init's console: `msg="image unpacked" digest=D ... took=T`.
func (n *benchNode) unpackTook(b *testing.B, digest string) time.Duration {
	m := regexp.MustCompile(`image unpacked" digest=` + regexp.QuoteMeta(digest) + `\b.* took=(\S+)`).
		FindStringSubmatch(n.logs.String())
	if m == nil {
		b.Fatalf("init's console has no \"image unpacked\" line for %s", digest)
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		b.Fatalf("init's console: took=%s: %v", m[1], err)
	}
	return d
}

// stop stops a container and waits until it is down, so that the next
// round's httpd can have its port.
func (n *benchNode) stop(b *testing.B, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := n.unix()
	if _, err := cl.StopContainer(ctx, name); err != nil {
		b.Fatal(err)
	}
	for {
		c, err := cl.Container(ctx, name)
		if err != nil {
			b.Fatalf("waiting for %s to stop: %v", name, err)
		}
		if c.State == api.StateStopped {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *pushSamples) peer(b *testing.B, cr crun, log *os.File, img string, config []byte, bundle string) {
	if err := os.Mkdir(bundle, 0o755); err != nil {
		b.Fatal(err)
	}
	id := "allium-bench-" + filepath.Base(bundle)
	b.Cleanup(func() { cr.command("delete", "-f", id).Run() }) // if a failure skips the delete below
	t0 := time.Now()
	bsdtar := exec.Command("bsdtar", "-xf", img, "-C", bundle)
	if out, err := bsdtar.CombinedOutput(); err != nil {
		b.Fatalf("bsdtar -xf %s: %v: %s", img, err, out)
	}
	tb := time.Since(t0)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), config, 0o644); err != nil {
		b.Fatal(err)
	}
	tc := cr.run(b, log, "run", "-d", "--bundle", bundle, id)
	s.peerTotal = append(s.peerTotal, time.Since(t0))
	s.bsdtar, s.crun = append(s.bsdtar, tb), append(s.crun, tc)
	cr.run(b, log, "delete", "-f", id)
}

func (s *pushSamples) print(w io.Writer, rounds int) {
	cloud, started, peer := benchMedian(s.cloud), benchMedian(s.started), benchMedian(s.peerTotal)
	fmt.Fprintf(w, "\nBenchmarkPushToRunning: a %.2f MB .txz (busybox + ~3 MB of files; mkimage pack, 4 MiB xz blocks), "+
		"command busybox httpd, no probe;\nmedians of %d rounds, allium and peer alternated; a new image digest every round\n\n",
		float64(s.size)/1e6, rounds)
	fmt.Fprintf(w, "%-52s %9s  %s\n", "", "median s", "each round (s)")
	row := func(name string, d []time.Duration) {
		fmt.Fprintf(w, "%-52s %9.3f  %s\n", name, benchMedian(d).Seconds(), benchSeconds(d))
	}
	row("allium: cloud start, until it returns (running)", s.cloud)
	row("allium: node started the container (from t0)", s.started)
	row("allium: of which the node's unpack helper", s.unpack)
	row("peer: bsdtar -xf", s.bsdtar)
	row("peer: crun run -d", s.crun)
	row("peer: bsdtar + config.json + crun run -d", s.peerTotal)
	fmt.Fprintf(w, "\nallium / peer, paired per round: cloud start %.2fx (median of ratios %.2fx); node started %.2fx\n",
		cloud.Seconds()/peer.Seconds(), benchPairedRatio(s.cloud, s.peerTotal), started.Seconds()/peer.Seconds())
}

func (s *pushSamples) report(b *testing.B) {
	b.ReportMetric(0, "ns/op") // the whole run's time means nothing here
	b.ReportMetric(benchMedian(s.cloud).Seconds(), "allium-s")
	b.ReportMetric(benchMedian(s.started).Seconds(), "node-started-s")
	b.ReportMetric(benchMedian(s.unpack).Seconds(), "node-unpack-s")
	b.ReportMetric(benchMedian(s.bsdtar).Seconds(), "bsdtar-s")
	b.ReportMetric(benchMedian(s.peerTotal).Seconds(), "peer-s")
	b.ReportMetric(benchPairedRatio(s.cloud, s.peerTotal), "allium/peer")
}

// benchPairedRatio is the median over rounds of num[i]/den[i].
func benchPairedRatio(num, den []time.Duration) float64 {
	r := make([]time.Duration, len(num))
	for i := range num {
		r[i] = time.Duration(float64(time.Second) * num[i].Seconds() / den[i].Seconds())
	}
	return benchMedian(r).Seconds()
}

func benchFileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return fi.Size()
}

// BenchmarkCrashLoop is issue 3's crash-loop cost: a container whose
// command (`/bin/false`, busybox) exits 1 at once, under the default
// restart policy (1 s doubling, ±20%; crashloop after 10 failures in
// 10 min), supervised by the real init. Over a window
// ($ALLIUM_BENCH_WINDOW, default 60s) it measures init's CPU time from
// /proc/PID/stat on the host: its own (utime + stime) and that of the
// children it reaped (cutime + cstime: the shims and workloads), as %
// of one core. The peer is the same window just before, with no
// container (idle init). Goal: the loop's cost, the difference, under
// 0.5% of one core.
//
// During both windows, 200 GET /v1/node over the unix socket, evenly
// spread, measure the API's latency (their CPU is in both windows).
// Restarts are the container's restart count (GET
// /v1/containers/crash) at the window's end.
func BenchmarkCrashLoop(b *testing.B) {
	requireRoot(b)
	window := benchWindow(b)
	mkimage := testbin.Path(b, "mkimage")
	img := filepath.Join(b.TempDir(), "crash.txz")
	benchPack(b, mkimage, busyboxTree(b, 0), img, "--cmd", "/bin/false", "--name", "crash")
	n := startBenchNode(b, testkit.Ext4(b, 512<<20))
	time.Sleep(2 * time.Second) // let boot's work settle

	idle := n.window(b, window, "")
	n.push(b, img, "crash")
	loop := n.window(b, window, "crash")
	printCrashLoop(os.Stdout, window, idle, loop)

	b.ReportMetric(0, "ns/op") // the whole run's time means nothing here
	b.ReportMetric(idle.percent(true), "idle-%core")
	b.ReportMetric(loop.percent(true), "loop-%core")
	b.ReportMetric(loop.percent(true)-idle.percent(true), "added-%core")
	b.ReportMetric(float64(loop.restarts), "restarts")
	b.ReportMetric(float64(benchPercentile(loop.lat, 50).Microseconds()), "loop-p50-µs")
	b.ReportMetric(float64(benchPercentile(idle.lat, 50).Microseconds()), "idle-p50-µs")
}

// goalLoopPercent is issue 3's goal for a crash-looping container.
const goalLoopPercent = 0.5

func benchWindow(b *testing.B) time.Duration {
	s := os.Getenv("ALLIUM_BENCH_WINDOW")
	if s == "" {
		return 60 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Second {
		b.Fatalf("ALLIUM_BENCH_WINDOW=%q: want a duration of 1s or more, such as 20s", s)
	}
	return d
}

// push uploads img and creates the container name from it, without
// waiting.
func (n *benchNode) push(b *testing.B, img, name string) {
	data, err := os.ReadFile(img)
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	f, err := os.Open(img)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := n.tcp(n.client)
	if _, err := cl.Upload(ctx, digest, f, int64(len(data)), api.UploadOptions{}); err != nil {
		b.Fatalf("upload %s: %v", img, err)
	}
	if _, err := cl.PutContainer(ctx, name, api.ContainerRequest{Image: digest}); err != nil {
		b.Fatalf("PUT container %s: %v", name, err)
	}
}

// windowSample is what one window measured.
type windowSample struct {
	length          time.Duration
	self, children  time.Duration // init's CPU time over the window
	lat             []time.Duration
	restarts        uint64
	state, lastExit string
}

func (w windowSample) percent(withChildren bool) float64 {
	cpu := w.self
	if withChildren {
		cpu += w.children
	}
	return 100 * cpu.Seconds() / w.length.Seconds()
}

// window measures init's CPU time over d while 200 GETs of /v1/node,
// spread evenly, measure the API's latency; name, if set, is the
// container whose restarts to count.
func (n *benchNode) window(b *testing.B, d time.Duration, name string) windowSample {
	const requests = 200
	cl := n.unix()
	ctx := context.Background()
	var w windowSample
	restarts0 := n.restarts(b, name)
	self0, children0 := procCPU(b, n.pid)
	start := time.Now()
	for i := range requests {
		time.Sleep(time.Until(start.Add(d * time.Duration(i) / requests)))
		t := time.Now()
		if _, err := cl.Node(ctx); err != nil {
			b.Fatalf("GET /v1/node: %v", err)
		}
		w.lat = append(w.lat, time.Since(t))
	}
	time.Sleep(time.Until(start.Add(d)))
	self1, children1 := procCPU(b, n.pid)
	w.length = time.Since(start)
	w.self, w.children = self1-self0, children1-children0
	w.restarts = n.restarts(b, name) - restarts0
	if name != "" {
		c, err := cl.Container(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		w.state = c.State
		if c.LastExit != nil {
			w.lastExit = fmt.Sprintf("exit %d", c.LastExit.Code)
		}
	}
	return w
}

func (n *benchNode) restarts(b *testing.B, name string) uint64 {
	if name == "" {
		return 0
	}
	c, err := n.unix().Container(context.Background(), name)
	if err != nil {
		b.Fatalf("GET /v1/containers/%s: %v", name, err)
	}
	return c.Restarts
}

func printCrashLoop(w io.Writer, window time.Duration, idle, loop windowSample) {
	fmt.Fprintf(w, "\nBenchmarkCrashLoop: init's CPU over a %v window, idle (no container) then with one container crash-looping\n", window)
	fmt.Fprintf(w, "(/bin/false, default restart policy); %% of one core from /proc/PID/stat (10 ms ticks); "+
		"API: 200 GET /v1/node over the unix socket, spread over each window\n\n")
	fmt.Fprintf(w, "%-40s %10s %10s %10s  %s\n", "", "idle", "loop", "added", "goal")
	pct := func(label string, withChildren bool, goal string) {
		fmt.Fprintf(w, "%-40s %10.3f %10.3f %+10.3f  %s\n", label,
			idle.percent(withChildren), loop.percent(withChildren), loop.percent(withChildren)-idle.percent(withChildren), goal)
	}
	added := loop.percent(true) - idle.percent(true)
	verdict := "NOT met"
	if added < goalLoopPercent {
		verdict = "met"
	}
	pct("init, own CPU (% of one core)", false, "")
	pct("init + reaped children (% of one core)", true, fmt.Sprintf("added < %.1f%%: %s", goalLoopPercent, verdict))
	fmt.Fprintf(w, "%-40s %10.3f %10.3f\n", "CPU seconds (own + children)",
		(idle.self + idle.children).Seconds(), (loop.self + loop.children).Seconds())
	for _, p := range []int{50, 90, 99} {
		i, l := benchPercentile(idle.lat, p), benchPercentile(loop.lat, p)
		fmt.Fprintf(w, "%-40s %10.3f %10.3f %9.2fx\n", fmt.Sprintf("GET /v1/node p%d (ms)", p),
			float64(i.Microseconds())/1e3, float64(l.Microseconds())/1e3, l.Seconds()/i.Seconds())
	}
	fmt.Fprintf(w, "%-40s %10s %10d\n", "restarts during the window", "-", loop.restarts)
	fmt.Fprintf(w, "container at the window's end: %s, last %s\n", loop.state, loop.lastExit)
}
