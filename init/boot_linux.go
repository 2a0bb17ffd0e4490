package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"allium/supervisor"

	"allium/internal/procstatus"

	"allium/api"
	"allium/init/netup"
	"allium/internal/safe"
	"allium/rootfs"
	"allium/state"

	"golang.org/x/sys/unix"
)

// boot runs the boot sequence up to serving: 1 console and kmsg
// logging, 2 the environment (a VM, or an OS container), 3 the early
// mounts, 4 modules, 5 the network, 6 the clock, 7 the data root and
// state.db; pid1 then starts 8 the API and tor, 9 restores the
// containers and 10 serves.
// Every step logs and goes on: a node that boots half-way and says why is
// better than a kernel panic.
func (n *node) boot(args []string, netUp netUpFunc) {
	if a := ignoredArgs(args); len(a) > 0 {
		n.log.Info("arguments: ignored", "args", a)
	}
	n.mounts = mountTable(n.k, n.log, n.root, rootfs.Mounts)
	sign := containerSign(args, os.Getenv("container"), n.root)
	n.container = sign != ""
	n.log.Info("environment", "kind", n.environment(), "sign", sign)
	n.cmdline = parseCmdline(readFile(filepath.Join(n.root, "proc/cmdline")))
	n.cfg = n.readConfig()
	if err := supervisor.RaiseHardLimits(filepath.Join(n.root, "proc/sys/fs/nr_open")); err != nil {
		n.log.Warn("rlimits", "err", err) // a container may then not raise its own
	}
	n.raiseOpenFiles()
	if !n.container {
		if n.console != nil {
			n.console.enableKmsg()
		}
		n.k.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF) // ctrl-alt-del becomes SIGINT
		n.setClock(time.Now())
		n.loadModules(false)
		n.startNetwork(netUp)
	}
	n.data = mountData(n.k, n.log, n.root, n.dataSpec(), n.container)
	if n.data.Warning != "" {
		n.warn(n.data.Warning)
	}
	n.openState()
}

// setClock moves a clock that reads earlier than the image's build time
// forward to it (boot step 6): a VPS without a battery-backed clock
// can start in 1970, and tor will not join the network with a clock
// that is far off. A clock that is merely late is tor's to report.
func (n *node) setClock(now time.Time) {
	if n.cfg.Built.IsZero() || !now.Before(n.cfg.Built) {
		return
	}
	if err := n.k.SetClock(n.cfg.Built); err != nil {
		n.log.Error("clock: cannot set it", "now", now, "err", err)
		n.warn(fmt.Sprintf("the clock reads %s, before this image was built (%s), and setting it failed: %v; tor needs a correct clock",
			now.UTC().Format(time.RFC3339), n.cfg.Built.UTC().Format(time.RFC3339), err))
		return
	}
	n.log.Warn("clock: it read earlier than the image's build time; set it to the build time", "was", now.UTC(), "now", n.cfg.Built.UTC())
	n.warn(fmt.Sprintf("the clock read %s at boot, before this image was built; it was set to %s: tor needs a correct clock, so check the host's",
		now.UTC().Format(time.RFC3339), n.cfg.Built.UTC().Format(time.RFC3339)))
}

// lateBoot finishes what the API need not wait for: the modules marked
// late (the power button's among them), then the power button watch.
func (n *node) lateBoot() {
	defer close(n.lateDone)
	if n.container {
		return
	}
	n.loadModules(true)
	n.watchPowerButtons(n.root)
	n.freeModules()
}

// freeModules deletes the module files once they are loaded: in an
// initramfs they are RAM (about 2 MB), and nothing loads them again.
func (n *node) freeModules() {
	dir := filepath.Join(n.root, "lib/modules")
	if !isVolatile(dir) {
		return // a real disk: leave the operator's files alone
	}
	if err := os.RemoveAll(dir); err != nil {
		n.log.Warn("modules: could not free the module files", "err", err)
	}
}

func (n *node) loadModules(late bool) {
	for _, w := range loadModules(n.k, n.log, n.root, kernelRelease(), onXen(n.root), late) {
		n.warn(w)
	}
}

// containerSign is why PID 1 takes itself for an OS container's init,
// or "" in a VM: the signs a container's manager leaves (OpenVZ starts
// init as "init -z" and sets container=, as LXC and systemd-nspawn set
// container=), OpenVZ's /proc (vz and user_beancounters, which a
// container has without the host's /proc/vz/version), or no
// CAP_SYS_MODULE. It reads /proc under root, once it is mounted.
func containerSign(args []string, containerEnv, root string) string {
	switch {
	case containerEnv != "":
		return "container=" + containerEnv
	case slices.Contains(args, "-z"):
		return "init -z"
	case !exists(filepath.Join(root, "proc/vz/version")) &&
		(exists(filepath.Join(root, "proc/vz")) || exists(filepath.Join(root, beancountersFile))):
		return "OpenVZ's /proc"
	case !hasCapSysModule(root):
		return "no CAP_SYS_MODULE"
	}
	return ""
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// hasCapSysModule reports whether PID 1 may load modules; an OS
// container's init may not. With /proc unreadable, assume a VM.
func hasCapSysModule(root string) bool {
	caps, ok := procstatus.Hex(readFile(filepath.Join(root, "proc/self/status")), "CapEff")
	return !ok || caps&(1<<unix.CAP_SYS_MODULE) != 0
}

func (n *node) environment() string {
	if n.container {
		return api.EnvContainer
	}
	return api.EnvVM
}

// readConfig reads the baked node.json. A node without one still boots,
// named by its hostname, and says so.
func (n *node) readConfig() rootfs.NodeConfig {
	b, err := os.ReadFile(filepath.Join(n.root, rootfs.NodeConfigFile))
	if err == nil {
		cfg, perr := rootfs.ParseNodeConfig(b)
		if perr == nil {
			return cfg
		}
		err = perr
	}
	host, _ := os.Hostname()
	n.log.Error("config: using defaults", "err", err)
	n.warn("no usable " + rootfs.NodeConfigFile + " (" + err.Error() + "); running with defaults")
	return rootfs.NodeConfig{Name: host}
}

// dataSpec is allium.data= from the kernel command line, else the baked
// default. In an OS container the host's command line is not ours, so
// only the baked config counts there.
func (n *node) dataSpec() string {
	if v, ok := n.cmdline["allium.data"]; ok && !n.container {
		return v
	}
	return n.cfg.Data
}

// netUpFunc brings the network up; netup.Up in production.
type netUpFunc func(ctx context.Context, cfg netup.Config, resolvConf string) (netup.State, error)

// startNetwork configures the network in the background: the API's
// listeners bind to every address and need not wait for DHCP.
func (n *node) startNetwork(netUp netUpFunc) {
	cfg, warns := netConfig(n.cmdline)
	for _, w := range warns {
		n.log.Error("network: kernel command line: " + w)
		n.warn(w)
	}
	safe.Go(n.log, "network", func() {
		st, err := netUp(context.Background(), cfg, filepath.Join(n.root, rootfs.ResolvConf))
		if errors.Is(err, netup.ErrNoLease) {
			// netup keeps asking in the background and applies a late lease.
			n.log.Warn("network: no DHCP lease yet; still trying", "err", err)
			return
		}
		if err != nil {
			n.log.Error("network: not configured", "err", err)
			n.warn("network: " + err.Error())
			return
		}
		n.log.Info("network: up", "state", st)
	})
}

// openState opens state.db on the data root. If even a fresh database
// cannot be made there (a read-only or full disk), state goes to /run so
// the API still answers, and the node says persistence is off.
func (n *node) openState() {
	if !n.openDB() {
		return
	}
	var err error
	n.bootCount, err = n.db.CountBoot()
	if err != nil {
		n.log.Error("state: counting the boot", "err", err)
	}
	n.seedKeys()
	n.log.Info("state: open", "path", n.db.Path(), "boot", n.bootCount)
}

// openDB opens state.db (openState), and reports whether it did.
func (n *node) openDB() bool {
	path := filepath.Join(n.root, rootfs.StateFile)
	db, err := state.Open(path, n.log)
	if err != nil {
		n.log.Error("state: cannot open; keeping state in memory", "err", err)
		n.warn("state.db: " + err.Error() + "; state is in /run and will not survive a reboot")
		n.data.Persistent = false
		db, err = state.Open(filepath.Join(n.root, "run/allium-state.db"), n.log)
		if err != nil {
			n.log.Error("state: cannot open in /run either", "err", err)
			return false
		}
	}
	n.db = db
	db.OnRecover(n.stateRecovered)
	return true
}

// stateRecovered tells the operator what state.db was recovered from
// (`cloud info`). A recovery at run time may have left containers the
// supervisor runs without a record: apps records them again from disk.
func (n *node) stateRecovered(r state.Recovery) {
	n.warn(r.String())
	if a := n.apps; a != nil && r.Damage != "" {
		for _, w := range a.Resync() {
			n.warn(w)
		}
	}
}

// seedKeys copies the baked authorized_keys into state.db on first boot.
func (n *node) seedKeys() {
	f, err := os.Open(filepath.Join(n.root, rootfs.AuthorizedKeysFile))
	if err != nil {
		n.log.Warn("keys: no baked authorized_keys", "err", err)
		return
	}
	defer f.Close()
	keys, err := api.ParseAuthorizedKeys(f)
	if err != nil {
		n.log.Error("keys: bad authorized_keys", "err", err)
		n.warn(err.Error())
		return
	}
	var sk []state.Key
	for _, k := range keys {
		sk = append(sk, state.Key{Public: k.Key, Onion: k.Onion, Name: k.Name, Role: state.RoleAdmin, Added: time.Now()})
	}
	if seeded, err := n.db.SeedKeys(sk); err != nil {
		n.log.Error("keys: seeding", "err", err)
	} else if seeded {
		n.log.Info("keys: authorized the baked client keys", "count", len(sk))
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func kernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}
