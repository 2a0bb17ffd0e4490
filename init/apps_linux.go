package main

import (
	"os"
	"path/filepath"

	"allium/supervisor/idmap"

	"allium/init/apps"
	"allium/rootfs"
)

// startApps starts the node's images and containers (package apps) on
// the data root. Without state.db there is nothing to keep them in, and
// the API says images and containers are unavailable.
func (n *node) startApps() {
	if n.db == nil {
		n.warn("images and containers are unavailable: no state database")
		return
	}
	data := filepath.Join(n.root, rootfs.DataDir)
	a, err := apps.New(apps.Options{DB: n.db, Data: data, Starter: n.reaper, Mounter: n.k, Log: n.log, Isolation: n.isolation,
		IDMapper: idmap.Mapper{Starter: n.reaper, Exe: "/proc/self/exe"}, Boot: n.bootCount})
	if err != nil {
		n.log.Error("apps: cannot open the image store", "err", err)
		n.warn("images and containers are unavailable: " + err.Error())
		return
	}
	n.linkContainers(data)
	n.apps, n.Apps = a, a
}

// restoreApps probes the isolation ladder, then hands the recorded
// containers back to the supervisor. It runs after the API is up (serve,
// then restore): the probe re-executes PID 1's binary a few times (most
// of a second under QEMU's TCG), and preparing a root can take long
// where it has to be a copy.
func (n *node) restoreApps() {
	n.probeIsolation()
	if n.apps == nil {
		return
	}
	for _, w := range n.apps.Restore() {
		n.warn(w)
	}
}

// linkContainers makes /containers point at the containers' roots.
func (n *node) linkContainers(data string) {
	link := filepath.Join(n.root, "containers")
	os.Remove(link) // a stale link; a real directory is left alone
	if err := os.Symlink(filepath.Join(rootfs.DataDir, "containers"), link); err != nil && !os.IsExist(err) {
		n.log.Warn("apps: cannot link /containers", "err", err)
	}
	os.MkdirAll(apps.ContainersDir(data), 0o755)
}
