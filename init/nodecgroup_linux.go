package main

import (
	"path"

	"allium/api"
	"allium/supervisor/cgroup"
)

// nodeCgroup is the node's own cgroup (init, tor and their helpers),
// the containers' parent group, and the memory Protect set between them.
type nodeCgroup struct {
	node, containers *cgroup.Group
	guaranteed       uint64 // cgroup.Reserve of the machine's memory
	containersMax    uint64 // the rest
}

// keepCgroup records the groups protectNode set up in h, on a machine
// of total bytes, for GET /v1/node.
func (n *node) keepCgroup(h *cgroup.Hierarchy, total uint64) {
	reserve := cgroup.Reserve(total)
	cg := &nodeCgroup{node: h.Group("node"), containers: h.Group("containers"),
		guaranteed: reserve, containersMax: total - reserve}
	n.mu.Lock()
	n.cg = cg
	n.mu.Unlock()
}

// cgroupView is GET /v1/node's cgroup: what the node's own group uses
// now; nil without cgroups, or when its files cannot be read (logged).
func (n *node) cgroupView() *api.NodeCgroup {
	n.mu.Lock()
	cg := n.cg
	n.mu.Unlock()
	if cg == nil {
		return nil
	}
	own, err := cg.node.Stats()
	if err != nil {
		n.log.Warn("node cgroup", "err", err)
		return nil
	}
	all, err := cg.containers.Stats()
	if err != nil {
		n.log.Warn("node cgroup: the containers' group", "err", err)
		return nil
	}
	return &api.NodeCgroup{
		Path:   path.Join(cgroupBase, cg.node.Name()),
		Memory: own.Memory, MemoryPeak: own.MemoryPeak, Pids: own.Pids,
		Guaranteed: cg.guaranteed, ContainersMax: cg.containersMax, ContainersMemory: all.Memory,
	}
}
