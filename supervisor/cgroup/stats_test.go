package cgroup

import (
	"errors"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	errEPERM = syscall.EPERM
	errESRCH = syscall.ESRCH
)

func TestStatsV2(t *testing.T) {
	for _, absent := range [][]string{nil, {"memory.peak", "io.stat"}} {
		f, g := newGroup(t, 2, allV2, "web", absent...)
		dir := "allium/web/"
		f.write(dir+"cpu.stat", "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\nnr_periods 0\n")
		f.write(dir+"memory.current", "1048576\n")
		f.write(dir+"pids.current", "3\n")
		f.write(dir+"memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n")
		want := Stats{CPU: 1500 * time.Millisecond, Memory: 1 << 20, Pids: 3, OOMKills: 1}
		if absent == nil {
			f.write(dir+"memory.peak", "2097152\n")
			f.write(dir+"io.stat", "8:0 rbytes=1024 wbytes=512 rios=2 wios=1 dbytes=0 dios=0\n"+
				"253:1 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n")
			want.MemoryPeak, want.IORead, want.IOWrite = 2<<20, 5120, 512
		}
		if got, err := g.Stats(); err != nil || got != want {
			t.Errorf("Stats() without %v = %+v, %v; want %+v", absent, got, err, want)
		}
	}
}

func TestStatsV1(t *testing.T) {
	f, g := newGroup(t, 1, allV1, "web")
	f.write("cpuacct/allium/web/cpuacct.usage", "2500000000\n")
	f.write("memory/allium/web/memory.usage_in_bytes", "1048576\n")
	f.write("memory/allium/web/memory.max_usage_in_bytes", "2097152\n")
	f.write("pids/allium/web/pids.current", "2\n")
	f.write("memory/allium/web/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
	f.write("blkio/allium/web/blkio.throttle.io_service_bytes",
		"8:0 Read 1024\n8:0 Write 512\n8:0 Sync 1536\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 1536\n"+
			"8:16 Read 100\n8:16 Write 0\n8:16 Total 100\nTotal 1636\n")
	want := Stats{CPU: 2500 * time.Millisecond, Memory: 1 << 20, MemoryPeak: 2 << 20, Pids: 2, IORead: 1124, IOWrite: 512, OOMKills: 2}
	if got, err := g.Stats(); err != nil || got != want {
		t.Errorf("Stats() = %+v, %v; want %+v", got, err, want)
	}
}

func TestStatsErrorNamesFile(t *testing.T) {
	for file, content := range map[string]string{
		"memory.current": "lots\n", "cpu.stat": "usage_usec -1\n", "memory.events": "oom_kill x\n",
		"io.stat": "8:0 rbytes=1k wbytes=0\n", "memory.peak": "\n",
	} {
		f, g := newGroup(t, 2, allV2, "web")
		f.write("allium/web/"+file, content)
		_, err := g.Stats()
		if want := "cgroup: parse " + f.path("allium/web/"+file) + ": "; err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Stats() with %s %q = %v, want %q...", file, content, err, want)
		}
	}
}

func TestStatsMissingFile(t *testing.T) {
	f, g := newGroup(t, 2, allV2, "web", "pids.current")
	_, err := g.Stats()
	want := "cgroup: read " + f.path("allium/web/pids.current") + ": "
	if !errors.Is(err, syscall.ENOENT) || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Stats() without pids.current = %v, want %q... ENOENT", err, want)
	}
}

func TestParseKeyed(t *testing.T) {
	for _, tc := range []struct {
		s, key string
		want   uint64
		bad    bool
	}{
		{"usage_usec 10\nuser_usec 5\n", "usage_usec", 10, false},
		{"usage_usec 10\nuser_usec 5\n", "user_usec", 5, false},
		{"usage_usec 10\n", "oom_kill", 0, false}, // not counted by this kernel
		{"oom_kill_disable 0\nunder_oom 0\noom_kill 3", "oom_kill", 3, false},
		{"oom_kill 18446744073709551615\n", "oom_kill", 1<<64 - 1, false},
		{"oom_kill\n", "oom_kill", 0, false},
		{"oom_kill -1\n", "oom_kill", 0, true},
		{"oom_kill 1 2\n", "oom_kill", 0, true},
	} {
		got, err := parseKeyed(tc.s, tc.key)
		if got != tc.want || (err != nil) != tc.bad {
			t.Errorf("parseKeyed(%q, %q) = %d, %v; want %d, error %v", tc.s, tc.key, got, err, tc.want, tc.bad)
		}
	}
}

func TestParseIO(t *testing.T) {
	for _, tc := range []struct {
		parse func(string) (uint64, uint64, error)
		s     string
		r, w  uint64
		bad   bool
	}{
		{parseIOStat, "", 0, 0, false},
		{parseIOStat, "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6\n8:16 rbytes=10 wbytes=20\n", 11, 22, false},
		{parseIOStat, "8:0 rbytes=x\n", 0, 0, true},
		{parseIOStat, "8:0\n\n", 0, 0, false},
		{parseBlkio, "Total 0\n", 0, 0, false},
		{parseBlkio, "8:0 Read 1\n8:0 Write 2\n8:0 Sync 3\n8:0 Total 3\n8:16 Read 10\nTotal 13\n", 11, 2, false},
		{parseBlkio, "8:0 Read -1\n", 0, 0, true},
	} {
		r, w, err := tc.parse(tc.s)
		if r != tc.r || w != tc.w || (err != nil) != tc.bad {
			t.Errorf("parse(%q) = %d, %d, %v; want %d, %d, error %v", tc.s, r, w, err, tc.r, tc.w, tc.bad)
		}
	}
}

func TestParseProcs(t *testing.T) {
	for s, want := range map[string]string{"": "[]", "1\n": "[1]", "1\n22\n333\n": "[1 22 333]", "0\n": "error", "x\n": "error", "-3": "error"} {
		pids, err := parseProcs(s)
		got := fmtInts(pids)
		if err != nil {
			got = "error"
		}
		if got != want {
			t.Errorf("parseProcs(%q) = %s, want %s", s, got, want)
		}
	}
}

func fmtInts(v []int) string {
	var s []string
	for _, n := range v {
		s = append(s, strconv.Itoa(n))
	}
	return "[" + strings.Join(s, " ") + "]"
}

// The kernel's files are not hostile, but a parser must not panic on
// anything.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"usage_usec 1\n", "8:0 rbytes=1 wbytes=2\n", "8:0 Read 1\nTotal 1\n", "1\n2\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parseKeyed(s, "usage_usec")
		parseIOStat(s)
		parseBlkio(s)
		parseProcs(s)
		parseUint(s)
	})
}

func TestReserve(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct{ total, reserve uint64 }{
		{0, 0}, {100 * mib, 50 * mib}, {128 * mib, 64 * mib}, {512 * mib, 64 * mib},
		{1 << 30, 107374182}, {4 << 30, 429496729},
	} {
		if got := Reserve(tc.total); got != tc.reserve {
			t.Errorf("Reserve(%d) = %d, want %d", tc.total, got, tc.reserve)
		}
		want := Limits{Memory: tc.total - tc.reserve, Pids: 4096}
		if got := DefaultLimits(tc.total); got != want {
			t.Errorf("DefaultLimits(%d) = %+v, want %+v", tc.total, got, want)
		}
	}
}
