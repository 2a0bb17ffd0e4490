package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"allium/api"
	"allium/init/handover"
	"allium/internal/safe"
	"allium/supervisor"
)

// Re-exec in place (POST /v1/node/update): PID 1 execs the staged init,
// which stays pid 1 and takes over. The order never loses an exit or a
// log line, and every step before the execve is undone, in reverse,
// when a later one fails:
//
//	old PID 1                                  new PID 1 (same process)
//	tor: stop (v1: the new init starts it again; the onion comes back
//	     once tor has published it again)
//	API: dup the listeners' sockets, stop serving (a connection made
//	     from now on waits in the socket's backlog)
//	reaper: pause (exits wait as zombies)
//	supervisor: Freeze (copiers stop at a line boundary; the log pipes
//	     fill and block the writers, nothing is lost)
//	state.db: Suspend (closed, its lock free)
//	Doc (handover package) ─── execve ───────> FromEnv: Doc
//	                                           reaper: expect the runs' pids
//	                                           signals, guard
//	                                           mounts, data root: from the Doc
//	                                           state.db: open, no boot counted
//	                                           cgroups, apps: Adopt
//	                                           API on the handed listeners
//	                                           tor, isolation probe
//	                                           "update: took over from V"
//
// v1 switches only in OS-container mode: in a VM the DHCP lease's
// renewal, the power button's watch and kmsg are per process and not
// handed over yet.

// nodeHandover is init's own part of the Doc (Doc.Node): what its boot
// found and set up, which the new init does not set up again.
type nodeHandover struct {
	Container bool     `json:"container"`
	Mounts    []string `json:"mounts"` // early mounts, in mount order
	Data      dataRoot `json:"data"`
	// SupervisorFiles is the index in Doc.Files of the supervisor's
	// first file (its files are the last ones, in Frozen's order).
	SupervisorFiles int `json:"supervisor_files"`
}

// freezeWait bounds the supervisor's Freeze (runs still starting are
// waited for), apiGraceSwitch the requests in flight when the API stops.
const (
	freezeWait     = 15 * time.Second
	apiGraceSwitch = 3 * time.Second
)

// SwitchInit starts the switch to the staged init of digest (api.Updater).
func (n *node) SwitchInit(ctx context.Context, digest string) (string, error) {
	s, err := n.inits()
	if err != nil {
		return "", err
	}
	in := s.Staged()
	switch {
	case in == nil:
		return "", api.Conflict("no init is staged on this node: send one first (`cloud update NODE --check`)")
	case in.Digest != digest:
		return "", api.Conflict("init %s is not the staged one (%s, %s)", digest, in.Digest, in.Version)
	case !n.container:
		return "", api.Conflict("re-executing in place is only done in OS-container mode in this build (a VM's DHCP lease and power button are not handed over yet); init %s stays staged", in.Version)
	}
	path := s.path(strings.TrimPrefix(in.Digest, "sha256:"), "")
	n.mu.Lock()
	busy := n.switching || n.powerBy != ""
	if !busy {
		n.switching = true
	}
	n.mu.Unlock()
	if busy {
		return "", api.Conflict("the node is already switching, or shutting down")
	}
	safe.Go(n.log, "update", func() { n.reexec(*in, path) })
	return fmt.Sprintf("switching to init %s in place; the node answers again with it once it took over", in.Version), nil
}

// reexec switches to the init at path; it returns only when the switch
// failed, the node still on this init.
func (n *node) reexec(in api.InitInfo, path string) {
	err := n.handOver(in, path)
	msg := fmt.Sprintf("switch to init %s failed at %s: %v; the node runs init %s, as before",
		in.Version, time.Now().UTC().Format(time.RFC3339), err, version)
	n.log.Error("update: "+msg, "to", in.Version)
	n.mu.Lock()
	n.switching, n.lastSwitch = false, msg
	n.mu.Unlock()
	n.recordEvent(api.Event{Time: time.Now().UTC(), Type: api.EventUpdate, Message: msg})
}

// handOver runs the old side of the switch and execs path. Each step
// pushes its undo; on a failure they run in reverse.
func (n *node) handOver(in api.InitInfo, path string) (err error) {
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	n.recordEvent(api.Event{Time: time.Now().UTC(), Type: api.EventUpdate,
		Message: fmt.Sprintf("switching in place from init %s to %s", version, in.Version)})
	n.log.Info("update: switching", "from", version, "to", in.Version, "path", path)
	if _, err := os.Stat(path); err != nil {
		return err
	}

	n.stopTor()
	undo = append(undo, n.startTor)

	ls, lfiles, err := n.listenerFiles()
	if err != nil {
		return err
	}
	n.stopAPI()
	undo = append(undo, func() { n.serveAPIOn(fileListeners(n, ls, lfiles)) })

	n.reaper.pause()
	undo = append(undo, n.reaper.resume)

	var frozen supervisor.Frozen
	var sfiles []*os.File
	if n.apps != nil {
		ctx, cancel := context.WithTimeout(context.Background(), freezeWait)
		frozen, sfiles, err = n.apps.Freeze(ctx)
		cancel()
		if err != nil {
			return fmt.Errorf("freeze the supervisor: %w", err)
		}
		// The contract: reaping again before the Thaw.
		undo = append(undo, func() { n.reaper.resume(); n.apps.Thaw() })
	}
	sup, err := json.Marshal(frozen)
	if err != nil {
		return err
	}
	if n.db != nil {
		resume, err := n.db.Suspend()
		if err != nil {
			return err
		}
		undo = append(undo, func() {
			if err := resume(); err != nil {
				n.log.Error("update: state.db", "err", err)
				n.warn(err.Error())
			}
		})
	}

	// Every file crosses as a copy: the originals stay as they are
	// (the supervisor's non-blocking, for its copiers after a Thaw; the
	// listeners' for the API again), and close at the execve.
	passed, drop, err := handover.Pass(append(append([]*os.File(nil), lfiles...), sfiles...))
	if err != nil {
		return err
	}
	undo = append(undo, drop)
	desc, err := json.Marshal(nodeHandover{Container: n.container, Mounts: n.mounts, Data: n.data, SupervisorFiles: len(lfiles)})
	if err != nil {
		return err
	}
	prev, err := os.Executable()
	if err != nil {
		return fmt.Errorf("the running init's path, to go back to: %w", err)
	}
	doc := handover.Doc{From: version, To: in.Version, Previous: prev, Booted: n.started, BootCount: n.bootCount,
		Listeners: ls, Supervisor: sup, Node: desc, Files: passed}
	mf, err := handover.Write(doc)
	if err != nil {
		return err
	}
	defer mf.Close() // after a failed execve
	n.log.Info("update: exec", "path", path, "files", len(passed), "containers", len(frozen.Containers))
	err = syscall.Exec(path, os.Args, append(os.Environ(), handover.EnvValue(mf)))
	return fmt.Errorf("execve %s: %w", path, err)
}

// listenerFiles duplicates the sockets of the API's listeners, which go
// on listening across the execve; the unix socket's file stays when its
// listener is closed.
func (n *node) listenerFiles() ([]handover.Listener, []*os.File, error) {
	n.mu.Lock()
	served := make(map[string]servedListener, len(n.listening))
	for k, v := range n.listening {
		served[k] = v
	}
	n.mu.Unlock()
	var ls []handover.Listener
	var files []*os.File
	for _, network := range []string{"unix", "tcp"} {
		sl, ok := served[network]
		if !ok {
			continue
		}
		var f *os.File
		var err error
		switch ln := sl.ln.(type) {
		case *net.UnixListener:
			ln.SetUnlinkOnClose(false)
			f, err = ln.File()
		case *net.TCPListener:
			f, err = ln.File()
		default:
			err = fmt.Errorf("a %T", ln)
		}
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, nil, fmt.Errorf("hand over the API's %s listener (%s): %w", network, sl.addr, err)
		}
		ls = append(ls, handover.Listener{Network: network, Addr: sl.addr, File: len(files)})
		files = append(files, f)
	}
	return ls, files, nil
}

// stopAPI stops serving, letting requests in flight (the one that asked
// for the switch among them) finish for a moment. The listeners'
// sockets live on in their duplicates.
func (n *node) stopAPI() {
	if n.api == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiGraceSwitch)
	n.api.Shutdown(ctx)
	cancel()
	n.dropTCP()
}

// fileListeners makes listeners of the handed-over sockets, by network.
// One that cannot be made is logged and left to be bound afresh.
func fileListeners(n *node, ls []handover.Listener, files []*os.File) map[string]net.Listener {
	out := map[string]net.Listener{}
	for _, l := range ls {
		f := files[l.File]
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			n.log.Error("api: a handed-over listener; binding it afresh", "network", l.Network, "addr", l.Addr, "err", err)
			continue
		}
		out[l.Network] = ln
	}
	return out
}

// adoption is what a new init took over: the Doc and its parts.
type adoption struct {
	doc    handover.Doc
	node   nodeHandover
	frozen supervisor.Frozen
}

// takeHandover reads the Doc the old init left, if any, and has the
// reaper expect the runs' pids: call it before the first reap. nil when
// this init was booted; a Doc that cannot be read is logged, and the
// node boots (its containers' processes then are orphans, reaped as
// such).
func (n *node) takeHandover() *adoption {
	doc, err := handover.FromEnv()
	if errors.Is(err, handover.ErrNone) {
		return nil
	}
	if err == nil {
		a := &adoption{doc: doc}
		err = json.Unmarshal(doc.Node, &a.node)
		if err == nil && len(doc.Supervisor) > 0 {
			err = json.Unmarshal(doc.Supervisor, &a.frozen)
		}
		if err == nil {
			var pids []int
			for _, c := range a.frozen.Containers {
				if c.Run != nil {
					pids = append(pids, c.Run.PID)
				}
			}
			n.reaper.expect(pids...)
			return a
		}
	}
	n.log.Error("update: the handover from the previous init cannot be read; booting instead", "err", err)
	n.warn("update: the handover cannot be read (" + err.Error() + "); the node booted, its containers were not taken over")
	return nil
}

// adopt is the boot of an init that took over in place (pid1): what
// the boot set up is there already (mounts, data root, modules,
// cgroups); what is per process is done again.
func (n *node) adopt(a *adoption) {
	d := a.doc
	n.log.Info("update: taking over", "from", d.From, "to", version, "boot", d.BootCount)
	n.started, n.bootCount = d.Booted, d.BootCount
	n.container, n.mounts, n.data = a.node.Container, a.node.Mounts, a.node.Data
	n.cmdline = parseCmdline(readFile(filepath.Join(n.root, "proc/cmdline")))
	n.cfg = n.readConfig()
	n.raiseOpenFiles()
	if n.openDB() {
		n.log.Info("state: open", "path", n.db.Path(), "boot", n.bootCount)
	}
	safe.Run(n.log, "cgroups", n.earlyCgroups)
	safe.Run(n.log, "apps", n.startApps)
	safe.Run(n.log, "adopt", func() { n.adoptContainers(a) })
	var lfiles []*os.File
	for i := range min(a.node.SupervisorFiles, len(d.Files)) {
		f, err := d.File(i)
		if err != nil {
			n.log.Error("api: a handed-over listener", "err", err)
		}
		lfiles = append(lfiles, f)
	}
	safe.Run(n.log, "api", func() { n.serveAPIOn(fileListeners(n, d.Listeners, lfiles)) })
	safe.Run(n.log, "tor", n.startTor)
	safe.Go(n.log, "isolation", n.probeIsolation)
	safe.Go(n.log, "late boot", n.lateBoot)
	msg := fmt.Sprintf("took over from init %s at %s (boot %d goes on)", d.From, time.Now().UTC().Format(time.RFC3339), d.BootCount)
	n.mu.Lock()
	n.previous, n.lastSwitch = d.From, msg
	n.mu.Unlock()
	n.log.Info("update: " + msg)
	n.recordEvent(api.Event{Time: time.Now().UTC(), Type: api.EventUpdate, Message: "init " + version + " " + msg})
}

// adoptContainers hands the frozen supervision to the apps service,
// with the cgroups the old init gave its containers.
func (n *node) adoptContainers(a *adoption) {
	var files []*os.File
	for i := a.node.SupervisorFiles; i < len(a.doc.Files); i++ {
		f, err := a.doc.File(i)
		if err != nil {
			n.log.Error("update: a handed-over file", "err", err)
		}
		files = append(files, f)
	}
	if n.apps == nil {
		n.log.Error("update: no apps service: the containers handed over run unsupervised", "count", len(a.frozen.Containers))
		n.warn("update: the containers handed over run unsupervised (no apps service)")
		return
	}
	if n.early != nil {
		n.apps.UseCgroups(n.early, n.memory().Total)
		n.limited.Store(true)
	}
	if err := n.apps.Adopt(a.frozen, files); err != nil {
		n.log.Error("update: adopting the containers", "err", err)
		n.warn("update: " + err.Error())
	}
}
