package cgroup

import (
	"fmt"
	"path/filepath"
	"strconv"
)

// DefaultPids is the pids limit of a container that names none. A
// service uses tens of tasks (threads count); 4096 is far above that,
// while a fork bomb stops there, long before the kernel's pid_max
// (32768 at least) or its memory for task structures run out for init,
// tor and the other containers: eight bombs together reach the classic
// pid_max.
const DefaultPids = 4096

// minReserve is the least memory Reserve keeps for the node: init's and
// tor's resident sets (about 20 and 30 MiB) and some page cache for
// their binaries and state.db, so that they do not thrash.
const minReserve = 64 << 20

// Reserve is the memory kept for the node's own processes on a machine
// of total bytes: the larger of 64 MiB and a tenth of total (the page
// cache of a bigger node is worth more), but never more than half of
// total, so that a tiny VPS still runs a container.
func Reserve(total uint64) uint64 {
	r := max(minReserve, total/10)
	return min(r, total/2)
}

// DefaultLimits are the limits of a container that names none, on a
// machine of total bytes of memory: at most total - Reserve(total) of
// memory (swap capped to 0), so that one container alone cannot push
// init and tor out, and DefaultPids tasks. The CPU weight stays the
// default (100): containers share the CPU evenly, and init and tor,
// which use little, get their share when they need it.
func DefaultLimits(total uint64) Limits {
	return Limits{Memory: total - Reserve(total), Pids: DefaultPids}
}

// check says which limit is out of its range.
func (l Limits) check() error {
	if l.Pids < 0 {
		return fmt.Errorf("pids %d: %w (want 0 for no limit, or more)", l.Pids, ErrBadLimit)
	}
	if l.CPUWeight < 0 || l.CPUWeight > 10000 {
		return fmt.Errorf("cpu weight %d: %w (want 1 to 10000, or 0 for the default 100)", l.CPUWeight, ErrBadLimit)
	}
	return nil
}

// Set writes the group's limits, each to its file (a zero limit as "no
// limit"); the error names the file and the value.
func (g *Group) Set(l Limits) error {
	if g.err != nil {
		return g.err
	}
	if err := l.check(); err != nil {
		return fmt.Errorf("cgroup: set %s: %w", g.name, err)
	}
	return g.apply(g.limitWrites(l))
}

// write is a value for one of a group's files; an optional file is
// skipped where the kernel does not offer it.
type write struct {
	file, value string
	optional    bool
}

// apply writes ws in order.
func (g *Group) apply(ws []write) error {
	for _, w := range ws {
		file, ok := g.file(w.file)
		if w.optional && (!ok || !exists(file)) {
			continue
		}
		if err := writeFile(file, w.value); err != nil {
			return err
		}
	}
	return nil
}

// limitWrites are the files and values of l.
func (g *Group) limitWrites(l Limits) []write {
	pids := write{"pids.max", "max", false}
	if l.Pids > 0 {
		pids.value = strconv.Itoa(l.Pids)
	}
	weight := l.CPUWeight
	if weight == 0 {
		weight = 100
	}
	cpu := write{"cpu.weight", strconv.Itoa(weight), false}
	if g.h.version == 1 {
		cpu = write{"cpu.shares", strconv.Itoa(max(2, weight*1024/100)), false}
	}
	return append(g.memoryWrites(l.Memory), pids, cpu)
}

// memoryV2 limits memory to m bytes and swap to 0 (no limit to either
// when m is 0).
func memoryV2(m uint64) []write {
	if m == 0 {
		return []write{{"memory.max", "max", false}, {"memory.swap.max", "max", true}}
	}
	return []write{{"memory.max", strconv.FormatUint(m, 10), false}, {"memory.swap.max", "0", true}}
}

// memoryV1 limits memory and memory+swap both to m bytes (-1, no limit,
// when m is 0). The kernel refuses a memsw limit below the memory
// limit, so a raise writes memsw first and a cut writes memory first.
func (g *Group) memoryV1(m uint64) []write {
	v := "-1"
	if m > 0 {
		v = strconv.FormatUint(m, 10)
	}
	mem, sw := write{"memory.limit_in_bytes", v, false}, write{"memory.memsw.limit_in_bytes", v, true}
	if g.raisesMemory(m) {
		return []write{sw, mem}
	}
	return []write{mem, sw}
}

// raisesMemory reports whether m (0: no limit) is above the group's
// memory limit now.
func (g *Group) raisesMemory(m uint64) bool {
	file, _ := g.file("memory.limit_in_bytes")
	s, err := readFile(file)
	if err != nil {
		return false
	}
	cur, err := parseUint(s)
	return err == nil && (m == 0 || m > cur)
}

// Protect keeps Reserve(total) bytes of memory, of a machine of total
// bytes, for the node's own processes (init, tor) in node against the
// containers, all under containers, so that a greedy container cannot
// starve them:
//
//   - containers is capped at total - Reserve(total), swap included (as
//     Set's Memory): all the containers together reach that limit, and
//     the OOM killer picks among them, before the node runs short. On v1
//     this is the only protection: v1 has no memory.min, and its
//     memory.soft_limit_in_bytes only orders reclaim.
//   - on v2, memory.min = Reserve(total) on node and on each of its
//     ancestors below the root (a group's protection is bounded by its
//     parent's), so that reclaim leaves init's and tor's pages alone.
//
// Both groups must have been created. Protect one group per hierarchy:
// it overwrites the ancestors' memory.min.
func (h *Hierarchy) Protect(node, containers *Group, total uint64) error {
	for _, g := range []*Group{node, containers} {
		if g.err != nil {
			return g.err
		}
	}
	reserve := Reserve(total)
	if err := containers.apply(containers.memoryWrites(total - reserve)); err != nil {
		return err
	}
	if h.version == 1 {
		return nil
	}
	v := strconv.FormatUint(reserve, 10)
	for dir := node.dirIn(h.root); dir != filepath.Clean(h.root); dir = filepath.Dir(dir) {
		if err := writeFile(filepath.Join(dir, "memory.min"), v); err != nil {
			return err
		}
	}
	return nil
}

// memoryWrites limit memory to m bytes, swap capped.
func (g *Group) memoryWrites(m uint64) []write {
	if g.h.version == 2 {
		return memoryV2(m)
	}
	return g.memoryV1(m)
}
