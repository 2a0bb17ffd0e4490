package main

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"allium/supervisor/cgroup"

	"allium/api"
	"allium/init/apps"
	"allium/rootfs"
	"allium/state"
	"allium/supervisor/isolation"
)

// node is PID 1's state. The boot sequence fills it in; after that the
// API reads it and the main loop waits on power.
type node struct {
	// Apps serves images and containers: the apps.Service once the
	// state and the data root are up, else api.UnimplementedApps, which
	// says so.
	api.Apps

	log     *slog.Logger
	console *consoleWriter // nil in tests
	k       kernel
	root    string // "/" on a real node; a temporary directory in tests

	container bool
	cfg       rootfs.NodeConfig
	cmdline   cmdline
	started   time.Time

	mounts    []string // early mounts, in mount order
	data      dataRoot
	db        *state.DB
	bootCount uint64
	reaper    *reaper
	api       *api.Server
	apps      *apps.Service
	tor       torState
	tcp       tcpSwitch
	nofile    uint64 // init's open-file limit once raised (raiseOpenFiles); 0 if unknown

	// afterReboot, when set (by tests), is called instead of exiting or
	// halting after reboot(2) returns.
	afterReboot func(error)

	// power receives the reboot(2) command of a requested shutdown.
	power chan int

	mu        sync.Mutex
	powerBy   string // who asked for the shutdown; "" before any request
	warnings  []string
	iso       *isolation.Report // the isolation probe's, once it has run
	cg        *nodeCgroup       // the node's own cgroup, once useCgroups made it
	initStore *initStore        // inits/, once inits made it
	early     *cgroup.Hierarchy // init's cgroups, if earlyCgroups set them up at boot
	isoDone   chan struct{}     // closed when the probe has run
	// probeCtx ends when the shutdown begins (probeCancel).
	probeCtx    context.Context
	probeCancel context.CancelFunc
	probing     atomic.Bool   // the probe has begun
	limited     atomic.Bool   // containers get cgroup limits
	lateDone    chan struct{} // closed when the late modules are loaded

	listening  map[string]servedListener // the API's listeners being served, by network
	switching  bool                      // a switch to a new init is under way
	previous   string                    // the init version this one took over from; "" after a boot
	lastSwitch string                    // how the last switch ended, in words
}

func newNode(log *slog.Logger, k kernel, root string) *node {
	probeCtx, probeCancel := context.WithCancel(context.Background())
	return &node{
		probeCtx: probeCtx, probeCancel: probeCancel,
		log:      log,
		k:        k,
		root:     root,
		started:  time.Now(),
		reaper:   newReaper(log),
		power:    make(chan int, 1),
		isoDone:  make(chan struct{}),
		lateDone: make(chan struct{}),
		Apps:     api.UnimplementedApps{},
	}
}

// warn records something the operator should know, for `cloud info`.
func (n *node) warn(msg string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.warnings = append(n.warnings, msg)
}

func (n *node) currentWarnings() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.warnings...)
}
