// Package cgroup is the cgroups rung's kernel side: one cgroup per
// container and one for the node's own processes, under a base
// directory (e.g. /allium) of the cgroup v2 hierarchy or of each v1
// hierarchy it uses (memory, pids, cpu, cpuacct, and blkio and freezer
// where mounted), behind one API for both versions.
//
// It owns the cgroup filesystem's side of a container: making and
// removing its group (and enabling the controllers on v2), writing its
// limits, moving a process in, killing every process in it, and reading
// its usage (CPU, memory, pids, I/O, OOM kills). It also owns the
// node-wide defaults for containers that name no limits
// (DefaultLimits, Reserve) and the protection of the node's own memory
// (Hierarchy.Protect).
//
// It does not start processes (the supervisor does, placing the shim in
// a group with Group.Add or, on v2, clone3's CLONE_INTO_CGROUP through
// Group.Dir), does not wait for them (the reaper does), does not mount
// cgroupfs (init does), and does not decide a container's limits from
// its manifest.
//
// Layout, for base "/allium" and groups "node" and "containers/web":
//
//	v2: /sys/fs/cgroup/allium/{node,containers/web}/
//	v1: /sys/fs/cgroup/{memory,pids,cpu,cpuacct,...}/allium/{node,containers/web}/
//
// On v2 the base and "containers" hold no process (the "no internal
// processes" rule): only leaves do.
package cgroup
