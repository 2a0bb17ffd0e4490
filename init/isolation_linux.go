package main

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"allium/api"
	"allium/supervisor"
	"allium/supervisor/cgroup"
	"allium/supervisor/isolation"
)

// stopProbe keeps the probe from starting children once the shutdown
// has begun, and waits for it: a child in a mount namespace of its own
// holds the data disk's filesystem, which then cannot be unmounted
// cleanly. (Regression: a poweroff right after a boot left the data disk
// needing recovery.)
func (n *node) stopProbe() {
	n.probeCancel()
	if !n.probing.Load() {
		return // not begun: it will see the cancel and start nothing
	}
	select {
	case <-n.isoDone:
	case <-time.After(probeStopWait):
		n.log.Warn("shutdown: the isolation probe did not stop")
	}
}

// probeStopWait bounds stopProbe's wait: one probe child's timeout.
const probeStopWait = 10 * time.Second

// isolation is the probe's report, once it has run (restoreApps runs it
// once the API is up: a container put before waits).
func (n *node) isolation() isolation.Report {
	<-n.isoDone
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.iso == nil { // the probe panicked: the floor
		return isolation.Report{}
	}
	return *n.iso
}

// probeIsolation finds the node's isolation ladder: the highest rung
// this kernel allows, no higher than allium.isolation= on the kernel
// command line (or, without it, node.json's isolation).
func (n *node) probeIsolation() {
	n.probing.Store(true)
	defer close(n.isoDone)
	select { // nf_tables and friends are late modules
	case <-n.lateDone:
	case <-n.probeCtx.Done():
	case <-time.After(30 * time.Second):
		n.log.Warn("isolation: probing before the late modules are loaded")
	}
	opts := isolation.Options{Starter: n.reaper, Root: n.root}
	s, ok := n.cmdline["allium.isolation"]
	if !ok && n.cfg.Isolation != "" {
		s, ok = n.cfg.Isolation, true // node.json's default
	}
	if ok {
		r, err := isolation.ParseRung(s)
		if err != nil {
			n.warn("kernel command line: allium.isolation=" + s + ": " + err.Error())
		} else {
			opts.Ceiling = &r
		}
	}
	ctx, cancel := context.WithTimeout(n.probeCtx, time.Minute)
	defer cancel()
	start := time.Now()
	r := isolation.Probe(ctx, opts)
	n.log.Info("isolation", "highest", r.Highest.String(), "cgroup", r.Cgroup, "missing", r.Gaps(),
		"took", time.Since(start).Round(time.Millisecond))
	n.useCgroups(r) // before the report shows: it says whether limits apply
	n.useNetwork(r)
	n.mu.Lock()
	n.iso = &r
	n.mu.Unlock()
}

// isolationView is GET /v1/node's isolation; nil before the probe.
func (n *node) isolationView() *api.Isolation {
	n.mu.Lock()
	r := n.iso
	n.mu.Unlock()
	if r == nil {
		return nil
	}
	containers, limited := min(r.Highest, supervisor.MaxRung), n.limited.Load()
	out := &api.Isolation{Highest: r.Highest.String(), Containers: containers.String(), Limited: limited,
		Cgroup: r.Cgroup, Unprotected: isolation.UnprotectedAt(containers, limited), Missing: map[string]string{}}
	for rung := r.Highest + 1; rung <= isolation.Cgroups; rung++ {
		out.Missing[rung.String()] = r.Missing(rung)
	}
	for _, c := range r.Checks {
		out.Checks = append(out.Checks, api.IsolationCheck{Name: c.Name, OK: c.OK, Why: c.Why})
	}
	return out
}

// cgroupBase is where Allium's cgroups live: node/ (init and tor) and
// containers/NAME.
const cgroupBase = "/allium"

// earlyCgroups moves init into node/ as soon as the boot has mounted
// the cgroup hierarchy, where it has the memory, pids and cpu
// controllers: before tor starts, so that tor is born there, and before
// most of init's memory is touched, which the kernel charges to the
// group that touched it and never moves (a move after the API was up
// left the node's group charged for 0.5 of init and tor's 25 MiB).
// Where it cannot, useCgroups tries again after the probe and says why.
func (n *node) earlyCgroups() {
	if r := isolation.ProbeCgroups(n.root); r.CgroupsMissing() == "" {
		if h, err := n.openCgroups(); err == nil {
			n.early = h
		}
	}
}

// openCgroups opens Allium's cgroups and moves init (and tor, if it
// runs) into node/.
func (n *node) openCgroups() (*cgroup.Hierarchy, error) {
	h, err := cgroup.Open(filepath.Join(n.root, "sys/fs/cgroup"), cgroupBase)
	if err == nil {
		err = n.protectNode(h, n.memory().Total)
	}
	return h, err
}

// useCgroups gives the node its cgroups where the probe found the
// memory, pids and cpu controllers: init (and with it tor, and every
// helper it starts) is in node/ (earlyCgroups, else now), whose memory
// the containers cannot take (Protect), and the containers get a group
// each.
func (n *node) useCgroups(r isolation.Report) {
	if why := r.CgroupsMissing(); why != "" {
		n.warn("no cgroups: " + why + "; containers run without memory or process limits")
		return
	}
	total := n.memory().Total
	h, err := n.early, error(nil)
	if h == nil {
		h, err = n.openCgroups()
	}
	if err != nil {
		n.log.Error("cgroups", "err", err)
		n.warn("cgroups: " + err.Error() + "; containers run without memory or process limits")
		return
	}
	n.keepCgroup(h, total)
	if n.apps != nil {
		n.apps.UseCgroups(h, total)
		n.limited.Store(true)
	}
	n.log.Info("cgroups", "version", h.Version(), "base", cgroupBase)
}

// protectNode moves init and tor into node/ and keeps their memory from
// the containers.
func (n *node) protectNode(h *cgroup.Hierarchy, total uint64) error {
	node, containers := h.Group("node"), h.Group("containers")
	for _, g := range []*cgroup.Group{node, containers} {
		if err := g.Create(); err != nil {
			return err
		}
	}
	pids := []int{os.Getpid()}
	if t := n.torStatus(); t != nil && t.PID > 0 {
		pids = append(pids, t.PID)
	}
	for _, pid := range pids {
		if err := node.Add(pid); err != nil {
			return err
		}
	}
	return h.Protect(node, containers, total)
}
