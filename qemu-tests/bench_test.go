package qemutests

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"allium/api"
)

// bareMarker starts the line internal/bareinit prints.
const bareMarker = "BAREINIT_OK"

// The goal BenchmarkBoot reports against.
const (
	goalSeconds = 1.0
	goalBytes   = 10e6
)

// sample is one boot's measurements.
type sample struct {
	ready time.Duration // QEMU start to the marker, or to the first API answer
	rss   uint64        // PID 1's VmRSS, bytes
	used  uint64        // the guest's MemTotal - MemAvailable, bytes
}

// BenchmarkBoot measures what Allium adds to a bare kernel reaching /init.
// It alternates two boots under the same QEMU flags (both without a data
// disk, on the same forwarded port) for $ALLIUM_BENCH_ROUNDS rounds
// (default 5), whatever b.N is, and reports medians:
//
//   - bare: the same kernel, no tor, /init = internal/bareinit, which prints a
//     marker with its RSS and the guest's memory in use and powers off;
//     QEMU start to the marker on the serial file.
//   - allium: the real appliance; QEMU start to the first successful
//     `cloud info --json`, and the memory that answer reports.
func BenchmarkBoot(b *testing.B) {
	e := setup(b)
	rounds := benchRounds(b)
	port := freePort(b)
	bareBin := bareInit(b)
	// The bare image holds no tor: what tor's files cost is Allium's.
	bareApp := newAppliance(b, e, "bare", buildOpts{noData: true, init: bareBin, port: port, noTor: true})
	alliumApp := newAppliance(b, e, "bench", buildOpts{noData: true, port: port})

	var bares, alliums []sample
	var cmdlines [2]string // bare's and allium's first QEMU command lines
	for i := range rounds {
		runBare := func() { bares = append(bares, bootBare(b, bareApp, i, &cmdlines[0])) }
		runAllium := func() { alliums = append(alliums, bootAllium(b, alliumApp, i, &cmdlines[1])) }
		if i%2 == 0 { // alternate which goes first, so drift in load hits both
			runBare()
			runAllium()
		} else {
			runAllium()
			runBare()
		}
	}
	t := newBootTable(bares, alliums, bareApp, alliumApp, bareBin)
	t.print(os.Stdout, rounds)
	fmt.Printf("QEMU, bare:   %s\nQEMU, allium: %s\n\n", cmdlines[0], cmdlines[1])
	t.report(b)
}

func benchRounds(b *testing.B) int {
	s := os.Getenv("ALLIUM_BENCH_ROUNDS")
	if s == "" {
		return 5
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		b.Fatalf("ALLIUM_BENCH_ROUNDS=%q: want a number of rounds, 1 or more", s)
	}
	return n
}

// bootBare boots the bare init and reads its marker off the serial file.
func bootBare(b *testing.B, a *appliance, round int, cmdline *string) sample {
	v := a.boot(b, fmt.Sprintf("round%d", round))
	*cmdline = cmp.Or(*cmdline, v.cmdline)
	deadline := time.Now().Add(firstAnswer)
	for {
		s, ok, err := parseBareMarker(readFile(v.serial))
		if err != nil {
			b.Fatal(err)
		}
		if ok {
			s.ready = time.Since(v.start)
			v.waitExit(b, exitWithin, "bareinit's marker")
			return s
		}
		if v.exited() {
			b.Fatalf("bare round %d: QEMU exited (%v) before bareinit's %s line", round, v.err, bareMarker)
		}
		if time.Now().After(deadline) {
			b.Fatalf("bare round %d: no %s line on the serial console within %v", round, bareMarker, firstAnswer)
		}
		time.Sleep(pollEvery)
	}
}

// parseBareMarker finds "BAREINIT_OK vmrss_kb=N used_kb=N\n": ok is
// false until the whole line is there.
func parseBareMarker(serial string) (s sample, ok bool, err error) {
	_, after, found := strings.Cut(serial, bareMarker+" ")
	if !found {
		return sample{}, false, nil
	}
	line, _, complete := strings.Cut(after, "\n")
	if !complete {
		return sample{}, false, nil
	}
	var rssKB, usedKB uint64
	if _, err := fmt.Sscanf(strings.TrimSpace(line), "vmrss_kb=%d used_kb=%d", &rssKB, &usedKB); err != nil {
		return sample{}, false, fmt.Errorf("bareinit printed %q: %w", bareMarker+" "+line, err)
	}
	return sample{rss: rssKB << 10, used: usedKB << 10}, true, nil
}

// bootAllium boots the appliance, waits for its first answer, and powers
// it off through the API.
func bootAllium(b *testing.B, a *appliance, round int, cmdline *string) sample {
	v := a.boot(b, fmt.Sprintf("round%d", round))
	*cmdline = cmp.Or(*cmdline, v.cmdline)
	n, ready := v.waitNode(b, "a first answer", anyNode)
	if r := a.runCloud(b, a.config, "poweroff", a.name); r.code != 0 {
		b.Fatalf("cloud poweroff %s = exit %d, %q, want 0", a.name, r.code, r.stderr)
	}
	v.waitExit(b, exitWithin, "cloud poweroff")
	return sample{ready: ready, rss: n.Memory.InitRSS, used: used(n.Memory)}
}

func used(m api.Memory) uint64 {
	if m.Total < m.Available {
		return 0
	}
	return m.Total - m.Available
}

// bootTable is what BenchmarkBoot found, in medians.
type bootTable struct {
	bare, allium             sample
	bareRuns, alliumRuns     []time.Duration
	bareInitrd, alliumInitrd int64 // bytes of initrd.img
	bareInit, alliumInit     int64 // bytes of the init binary
}

func newBootTable(bares, alliums []sample, bareApp, alliumApp *appliance, bareBin string) bootTable {
	return bootTable{
		bare: median(bares), allium: median(alliums),
		bareRuns: readies(bares), alliumRuns: readies(alliums),
		bareInitrd:   fileSize(filepath.Join(bareApp.dir, "initrd.img")),
		alliumInitrd: fileSize(filepath.Join(alliumApp.dir, "initrd.img")),
		bareInit:     fileSize(bareBin),
		alliumInit:   fileSize(alliumApp.env.init),
	}
}

func (t bootTable) addedSeconds() float64 { return (t.allium.ready - t.bare.ready).Seconds() }

func (t bootTable) addedBytes() float64 { return float64(t.allium.used) - float64(t.bare.used) }

func (t bootTable) print(w io.Writer, rounds int) {
	fmt.Fprintf(w, "\nBenchmarkBoot: medians of %d rounds, bare and allium alternated under the same QEMU flags (TCG, no data disk)\n", rounds)
	fmt.Fprintf(w, "goal: Allium adds ≤ %.0f s and ≤ %.0f MB over the bare boot\n\n", goalSeconds, goalBytes/1e6)
	fmt.Fprintf(w, "%-34s %12s %12s %12s  %s\n", "", "bare", "allium", "added", "goal")
	fmt.Fprintf(w, "%-34s %12.2f %12.2f %+12.2f  %s\n", "QEMU start -> ready (s)",
		t.bare.ready.Seconds(), t.allium.ready.Seconds(), t.addedSeconds(), verdict(t.addedSeconds() <= goalSeconds))
	fmt.Fprintf(w, "%-34s %12.1f %12.1f %+12.1f  %s\n", "guest memory used (MB)",
		mb(t.bare.used), mb(t.allium.used), t.addedBytes()/1e6, verdict(t.addedBytes() <= goalBytes))
	fmt.Fprintf(w, "%-34s %12.1f %12.1f %+12.1f\n", "PID 1 RSS (MB)",
		mb(t.bare.rss), mb(t.allium.rss), mb(t.allium.rss)-mb(t.bare.rss))
	fmt.Fprintf(w, "%-34s %12d %12d %+12d\n", "initrd.img (bytes)", t.bareInitrd, t.alliumInitrd, t.alliumInitrd-t.bareInitrd)
	fmt.Fprintf(w, "%-34s %12d %12d %+12d\n", "init binary (bytes)", t.bareInit, t.alliumInit, t.alliumInit-t.bareInit)
	fmt.Fprintf(w, "\nready means: bare, its marker on the serial file; allium, the first `cloud info --json` answer.\n")
	fmt.Fprintf(w, "each round (s): bare %s; allium %s\n", seconds(t.bareRuns), seconds(t.alliumRuns))
}

func (t bootTable) report(b *testing.B) {
	b.ReportMetric(0, "ns/op") // the whole run's time means nothing here
	b.ReportMetric(t.bare.ready.Seconds(), "bare-s")
	b.ReportMetric(t.allium.ready.Seconds(), "allium-s")
	b.ReportMetric(t.addedSeconds(), "added-s")
	b.ReportMetric(mb(t.bare.used), "bare-used-MB")
	b.ReportMetric(mb(t.allium.used), "allium-used-MB")
	b.ReportMetric(t.addedBytes()/1e6, "added-MB")
	b.ReportMetric(mb(t.bare.rss), "bare-rss-MB")
	b.ReportMetric(mb(t.allium.rss), "allium-rss-MB")
	b.ReportMetric(float64(t.alliumInitrd), "initrd-B")
	b.ReportMetric(float64(t.alliumInit), "init-B")
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "NOT met"
}

func mb(n uint64) float64 { return float64(n) / 1e6 }

// median takes each field's median on its own.
func median(s []sample) sample {
	return sample{
		ready: medianOf(s, func(x sample) time.Duration { return x.ready }),
		rss:   medianOf(s, func(x sample) uint64 { return x.rss }),
		used:  medianOf(s, func(x sample) uint64 { return x.used }),
	}
}

func medianOf[T time.Duration | uint64](s []sample, f func(sample) T) T {
	v := make([]T, len(s))
	for i, x := range s {
		v[i] = f(x)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func readies(s []sample) []time.Duration {
	out := make([]time.Duration, len(s))
	for i, x := range s {
		out[i] = x.ready
	}
	return out
}

func seconds(ds []time.Duration) string {
	f := make([]string, len(ds))
	for i, d := range ds {
		f[i] = fmt.Sprintf("%.2f", d.Seconds())
	}
	return strings.Join(f, " ")
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return fi.Size()
}
