package cgroup

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Stats reads the group's usage. A file the kernel does not offer (v2
// memory.peak before Linux 5.19, io.stat and v1 blkio without their
// controller) reads as 0; a file that does not parse is an error that
// names it.
func (g *Group) Stats() (Stats, error) {
	if g.err != nil {
		return Stats{}, g.err
	}
	r := statReader{g: g}
	var s Stats
	if g.h.version == 2 {
		s.CPU = time.Duration(r.keyed("cpu.stat", "usage_usec")) * time.Microsecond
		s.Memory = r.uint("memory.current", false)
		s.MemoryPeak = r.uint("memory.peak", true)
		s.Pids = int(r.uint("pids.current", false))
		s.IORead, s.IOWrite = r.io("io.stat", parseIOStat)
		s.OOMKills = r.keyed("memory.events", "oom_kill")
	} else {
		s.CPU = time.Duration(r.uint("cpuacct.usage", false)) // nanoseconds
		s.Memory = r.uint("memory.usage_in_bytes", false)
		s.MemoryPeak = r.uint("memory.max_usage_in_bytes", false)
		s.Pids = int(r.uint("pids.current", false))
		s.IORead, s.IOWrite = r.io("blkio.throttle.io_service_bytes", parseBlkio)
		s.OOMKills = r.keyed("memory.oom_control", "oom_kill")
	}
	return s, r.err
}

// statReader reads a group's files and keeps the first error.
type statReader struct {
	g   *Group
	err error
}

// read is one of the group's files; false after an error, or when an
// optional file is not offered.
func (r *statReader) read(name string, optional bool) (s, file string, ok bool) {
	file, ok = r.g.file(name)
	if r.err != nil || optional && (!ok || !exists(file)) {
		return "", file, false
	}
	s, r.err = readFile(file)
	return s, file, r.err == nil
}

func (r *statReader) fail(file string, err error) {
	r.err = &Error{Op: "parse", Path: file, Err: err}
}

// uint reads a file of one number.
func (r *statReader) uint(name string, optional bool) uint64 {
	s, file, ok := r.read(name, optional)
	if !ok {
		return 0
	}
	n, err := parseUint(s)
	if err != nil {
		r.fail(file, err)
	}
	return n
}

// keyed reads the value of key in a file of "key value" lines; 0 when
// the kernel has no such line.
func (r *statReader) keyed(name, key string) uint64 {
	s, file, ok := r.read(name, false)
	if !ok {
		return 0
	}
	n, err := parseKeyed(s, key)
	if err != nil {
		r.fail(file, err)
	}
	return n
}

// io reads bytes read and written from an optional file.
func (r *statReader) io(name string, parse func(string) (uint64, uint64, error)) (read, written uint64) {
	s, file, ok := r.read(name, true)
	if !ok {
		return 0, 0
	}
	read, written, err := parse(s)
	if err != nil {
		r.fail(file, err)
	}
	return read, written
}

// parseUint reads a file of one number: "268435456\n".
func parseUint(s string) (uint64, error) {
	return strconv.ParseUint(strings.TrimSpace(s), 10, 64)
}

// parseKeyed finds key's value in "key value" lines (cpu.stat,
// memory.events, memory.oom_control, cgroup.events); 0 when key is not
// there.
func parseKeyed(s, key string) (uint64, error) {
	for line := range strings.Lines(s) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && k == key {
			n, err := parseUint(v)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", key, err)
			}
			return n, nil
		}
	}
	return 0, nil
}

// parseIOStat sums v2 io.stat's rbytes and wbytes over its devices:
// "8:0 rbytes=1024 wbytes=512 rios=2 wios=1 dbytes=0 dios=0".
func parseIOStat(s string) (read, written uint64, err error) {
	for line := range strings.Lines(s) {
		fields := strings.Fields(line)
		for _, f := range fields[min(1, len(fields)):] {
			k, v, _ := strings.Cut(f, "=")
			if k != "rbytes" && k != "wbytes" {
				continue
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("%s %s: %w", fields[0], k, err)
			}
			if k == "rbytes" {
				read += n
			} else {
				written += n
			}
		}
	}
	return read, written, nil
}

// parseBlkio sums v1 blkio.throttle.io_service_bytes's Read and Write
// over its devices: "8:0 Read 1024" lines, then "Total 1536".
func parseBlkio(s string) (read, written uint64, err error) {
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) != 3 || (f[1] != "Read" && f[1] != "Write") {
			continue
		}
		n, err := strconv.ParseUint(f[2], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s %s: %w", f[0], f[1], err)
		}
		if f[1] == "Read" {
			read += n
		} else {
			written += n
		}
	}
	return read, written, nil
}

// parseProcs reads cgroup.procs: one pid a line.
func parseProcs(s string) ([]int, error) {
	var pids []int
	for _, f := range strings.Fields(s) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("pid %q: not a process id", f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}
