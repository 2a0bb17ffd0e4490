package main

import (
	"context"
	"time"

	"allium/api"
	"allium/supervisor/isolation"
)

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
// command line.
func (n *node) probeIsolation() {
	defer close(n.isoDone)
	select { // nf_tables and friends are late modules
	case <-n.lateDone:
	case <-time.After(30 * time.Second):
		n.log.Warn("isolation: probing before the late modules are loaded")
	}
	opts := isolation.Options{Starter: n.reaper, Root: n.root}
	if s, ok := n.cmdline["allium.isolation"]; ok {
		r, err := isolation.ParseRung(s)
		if err != nil {
			n.warn("kernel command line: allium.isolation=" + s + ": " + err.Error())
		} else {
			opts.Ceiling = &r
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	r := isolation.Probe(ctx, opts)
	n.log.Info("isolation", "highest", r.Highest.String(), "cgroup", r.Cgroup, "missing", r.Gaps(),
		"took", time.Since(start).Round(time.Millisecond))
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
	out := &api.Isolation{Highest: r.Highest.String(), Cgroup: r.Cgroup, Unprotected: isolation.Unprotected(r.Highest),
		Missing: map[string]string{}}
	for rung := r.Highest + 1; rung <= isolation.Cgroups; rung++ {
		out.Missing[rung.String()] = r.Missing(rung)
	}
	for _, c := range r.Checks {
		out.Checks = append(out.Checks, api.IsolationCheck{Name: c.Name, OK: c.OK, Why: c.Why})
	}
	return out
}
