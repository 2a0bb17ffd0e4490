// Package isolation is the node's isolation ladder: the rungs a
// container can run at (chroot, namespaces, userns, cgroups, each adding
// to the one below), and the probe that finds, at boot and by real
// calls (clone of each namespace kind, pivot_root, overlayfs, the cgroup
// controllers, nftables), the highest rung this kernel allows and why
// the next ones are missing.
//
// It does not run containers (the supervisor does, at the rung it is
// given) and reads no manifest: the caller picks the rung from the
// manifest's isolation.minimum and the node's Report.
package isolation
