package main

import (
	"encoding/json"
	"os"
	"path/filepath"

	"allium/supervisor/restart"

	"allium/imagestore"
	"allium/rootfs"
	"allium/supervisor"
)

// startApps opens the image store, starts the supervisor and restores
// every container: those the operator left running start again, the
// others stay stopped. Without state.db there is nothing to restore and
// the API says images and containers are unavailable.
func (n *node) startApps() {
	if n.db == nil {
		n.warn("images and containers are unavailable: no state database")
		return
	}
	data := filepath.Join(n.root, rootfs.DataDir)
	store, err := imagestore.Open(data, imagestore.Helper{Starter: n.reaper, Log: n.log}, n.log)
	if err != nil {
		n.log.Error("apps: cannot open the image store", "err", err)
		n.warn("images and containers are unavailable: " + err.Error())
		return
	}
	// The node lets a manifest ask for setuid files (no_new_privs makes
	// them inert at the chroot rung); device nodes stay refused.
	store.Limits = func(free int64) imagestore.Limits {
		l := imagestore.DefaultLimits(free)
		l.AllowSetuid = true
		return l
	}
	hub := newEventHub(n.log, n.db)
	a := &apps{log: n.log, db: n.db, store: store, events: hub, roots: roots{k: n.k, data: data}}
	a.sup = supervisor.New(supervisor.Options{Starter: n.reaper, OnEvent: hub.onSupervisor, Log: n.log})
	n.linkContainers(data)
	n.apps, n.Apps = a, a
}

// restoreApps hands the recorded containers back to the supervisor. It
// runs after the API is up (DESIGN.md: serve, then restore), because
// preparing a root can take long where it has to be a copy.
func (n *node) restoreApps() {
	if n.apps == nil {
		return
	}
	n.restore(n.apps)
	n.apps.collect()
}

// linkContainers makes /containers point at the containers' roots.
func (n *node) linkContainers(data string) {
	link := filepath.Join(n.root, "containers")
	os.Remove(link) // a stale link; a real directory is left alone
	if err := os.Symlink(filepath.Join(rootfs.DataDir, "containers"), link); err != nil && !os.IsExist(err) {
		n.log.Warn("apps: cannot link /containers", "err", err)
	}
	os.MkdirAll(filepath.Join(data, "containers"), 0o755)
}

// restore hands every recorded container back to the supervisor.
func (n *node) restore(a *apps) {
	cs, err := n.db.Containers()
	if err != nil {
		n.log.Error("apps: reading containers", "err", err)
		return
	}
	for _, c := range cs {
		if err := n.restoreOne(a, c.Name, c.Image, c.History, c.Running); err != nil {
			n.log.Error("apps: cannot restore a container", "container", c.Name, "err", err)
			n.warn("container " + c.Name + ": " + err.Error())
		}
	}
	n.log.Info("apps: containers restored", "count", len(cs))
}

func (n *node) restoreOne(a *apps, name, image string, history []byte, running bool) error {
	m, err := a.store.Manifest(image)
	if err != nil {
		return err
	}
	var hist restart.History
	if len(history) > 0 {
		if err := json.Unmarshal(history, &hist); err != nil {
			n.log.Warn("apps: unreadable restart history; starting afresh", "container", name, "err", err)
		}
	}
	return a.add(name, image, m, hist, running)
}
