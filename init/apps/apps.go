package apps

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"allium/api"
	"allium/imagestore"
	"allium/internal/child"
	"allium/manifest"
	"allium/state"
	"allium/supervisor"
	"allium/supervisor/cgroup"
	"allium/supervisor/idmap"
	"allium/supervisor/isolation"
	"allium/supervisor/network"
	"allium/supervisor/restart"
)

// Service is the node's images and containers: api.Apps over the image
// store, the supervisor and state.db. state.db holds what the operator
// asked for (image, running or not, the restart history); the
// supervisor holds what is happening now.
type Service struct {
	log    *slog.Logger
	db     *state.DB
	store  *imagestore.Store
	sup    *supervisor.Supervisor
	roots  roots
	events *eventHub
	// defaults fill the limits a manifest leaves unset (UseCgroups).
	defaults atomic.Pointer[cgroup.Limits]
	iso      func() isolation.Report
	// net is the node's private networks (UseNetwork); nil until then,
	// or with noNet saying why there are none.
	net   atomic.Pointer[network.Network]
	noNet atomic.Pointer[string]
	// boot is this boot's count; prev the previous boot's last Alive
	// mark, read before this boot wrote one (boot-loop protection).
	boot  uint64
	prev  state.Alive
	alive *aliveMarker
	// stateReserve is true while state.db keeps its reserve (space.go).
	stateReserve atomic.Bool

	// mu serializes changes to the set of containers (create, replace,
	// remove), so two PUTs of one name cannot interleave.
	mu sync.Mutex
}

var _ api.Apps = (*Service)(nil)

// gcGrace keeps a freshly pushed image from being collected before the
// PUT of its container arrives.
const gcGrace = 15 * time.Minute

// Options configure a Service. DB, Data, Starter and Mounter are
// required.
type Options struct {
	// DB is the node's state: containers, their histories, events.
	DB *state.DB
	// Data is the data root: images/, uploads/, containers/,
	// overlay/, volumes/ and logs/ live below it.
	Data string
	// Starter starts the unpack helper and the container shims: PID 1's
	// reaper.
	Starter child.Starter
	// Mounter mounts the containers' roots and volumes.
	Mounter Mounter
	// IDMapper makes the idmapped image layers of containers at the
	// userns rung (idmap.Mapper); nil gives each a shifted copy of its
	// image instead.
	IDMapper IDMapper
	// Log receives what happens; nil means slog.Default().
	Log *slog.Logger
	// Isolation returns what the node's isolation probe found (waiting
	// for it): containers run at its highest rung the supervisor
	// provides. nil means the chroot rung.
	Isolation func() isolation.Report
	// Boot is this boot's count (state.DB.CountBoot), for boot-loop
	// protection; 0 turns it off.
	Boot uint64
}

// New opens the image store in opts.Data and starts the supervisor,
// with no container yet: Restore hands it the recorded ones.
func New(opts Options) (*Service, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	store, err := imagestore.Open(opts.Data, imagestore.Helper{Starter: opts.Starter, Log: opts.Log}, opts.Log)
	if err != nil {
		return nil, err
	}
	store.Limits = uploadLimits
	prev, err := opts.DB.Alive()
	if err != nil {
		opts.Log.Error("apps: boot-loop protection: reading the previous boot's end", "err", err)
	}
	alive := &aliveMarker{log: opts.Log, db: opts.DB, boot: opts.Boot, window: BootLoopWindow}
	hub := newEventHub(opts.Log, opts.DB, opts.Boot, alive)
	if opts.Isolation == nil {
		opts.Isolation = func() isolation.Report { return isolation.Report{} }
	}
	s := &Service{log: opts.Log, db: opts.DB, store: store, events: hub, roots: roots{m: opts.Mounter, ids: opts.IDMapper, data: opts.Data},
		iso: opts.Isolation, boot: opts.Boot, prev: prev, alive: alive}
	s.sup = supervisor.New(supervisor.Options{Starter: opts.Starter, OnEvent: hub.onSupervisor, Log: opts.Log, Network: netHook{s}})
	s.keepStateReserve()
	return s, nil
}

// uploadLimits are the node's limits on an upload: DefaultLimits, but a
// manifest may ask for setuid files (no_new_privs makes them inert at
// the chroot rung); device nodes stay refused.
func uploadLimits(free int64) imagestore.Limits {
	l := imagestore.DefaultLimits(free)
	l.AllowSetuid = true
	return l
}

// ContainersDir is where the containers' roots are, below the data
// root; the node links /containers to it.
func ContainersDir(data string) string { return filepath.Join(data, "containers") }

// Restore hands every recorded container back to the supervisor: those
// the operator left running start again, the others stay stopped. A
// container root on disk that state.db does not hold (it was recovered
// from an older copy, or started fresh) is recorded again from its disk
// record, stopped. Then it collects the images no container uses. It
// returns what the operator should know (a container that could not be
// restored, or was rebuilt).
func (a *Service) Restore() (warnings []string) {
	cs, err := a.db.Containers()
	if err != nil {
		a.log.Error("apps: reading containers", "err", err)
		return []string{"containers: " + err.Error()}
	}
	for _, c := range cs {
		if err := a.restore(c); err != nil {
			a.log.Error("apps: cannot restore a container", "container", c.Name, "err", err)
			warnings = append(warnings, fmt.Sprintf("container %s: %v", c.Name, err))
		}
	}
	warnings = append(warnings, a.rebuildMissing(cs)...)
	a.log.Info("apps: containers restored", "count", len(cs))
	if w := a.collect(); w != "" {
		warnings = append(warnings, w)
	}
	return warnings
}

func (a *Service) restore(c state.Container) error {
	m, err := a.store.Manifest(c.Image)
	if err != nil {
		return err
	}
	var hist restart.History
	if len(c.History) > 0 {
		if err := json.Unmarshal(c.History, &hist); err != nil {
			a.log.Warn("apps: unreadable restart history; starting afresh", "container", c.Name, "err", err)
		}
	}
	if c.Running && a.boot != 0 {
		c.BootLoop = judge(c.Name, c.BootLoop, a.boot, a.prev, BootLoopWindow)
		if c.BootLoop.Held != "" {
			a.log.Warn("apps: boot-loop protection holds a container", "container", c.Name, "why", c.BootLoop.Held)
		}
	}
	return a.add(c.Name, c.Image, m, hist, c.Running, recordedIDs(c), c.BootLoop)
}

// add prepares name's root, records it and hands it to the supervisor,
// at the rung the node gives it. ids is the range of host ids recorded
// for it (zero for a new container): at the userns rung it keeps it, or
// gets one of its own. loop is its boot-loop record: held, it is
// recorded as running but not started.
func (a *Service) add(name, image string, m *manifest.Manifest, hist restart.History, running bool, ids idmap.Range, loop state.BootLoop) error {
	rung, err := a.rungFor(name, m)
	if err != nil {
		return err
	}
	if err := a.supports(name, m); err != nil {
		return err
	}
	pub, err := a.placeNet(name, m, rung)
	if err != nil {
		return err
	}
	if ids, err = a.idsFor(name, rung, ids); err != nil {
		return err
	}
	mode, err := a.roots.prepare(name, a.store.RootFS(image), m, ids)
	if err != nil {
		return api.Unavailable("prepare the root of %s: %v", name, err)
	}
	a.log.Info("apps: root ready", "container", name, "mode", mode)
	spec, err := supervisor.FromManifest(m, name, a.roots.root(name), a.roots.logs(name), rung, ids)
	if err != nil {
		return api.BadRequest("%s: %v", name, err)
	}
	spec.Limits = a.limits(spec.Limits)
	if pub.Addr.IsValid() {
		spec.Ready = supervisor.ProbeAt(spec.Ready, pub.Addr)
	}
	if err := a.roots.writeRecord(diskRecord{Name: name, Image: image, IDBase: ids.Base, IDSize: ids.Size, Written: time.Now().UTC()}); err != nil {
		return fmt.Errorf("record %s on disk: %w", name, err)
	}
	h, _ := json.Marshal(hist)
	rec := state.Container{Name: name, Image: image, Running: running, History: h, Isolation: rung.String(),
		IDBase: ids.Base, IDSize: ids.Size, BootLoop: loop}
	if pub.Addr.IsValid() {
		rec.Address = pub.Addr.String()
	}
	if err := a.db.PutContainer(rec); err != nil {
		return err
	}
	if pub.Addr.IsValid() {
		if err := a.net.Load().Add(pub); err != nil {
			return api.Conflict("%s: %v", name, err)
		}
	}
	return a.sup.Add(spec, hist, running && loop.Held == "")
}

// idsFor is the range of host ids name runs with at rung: none below
// the userns rung; else the one recorded, or the lowest no other
// container has.
func (a *Service) idsFor(name string, rung isolation.Rung, ids idmap.Range) (idmap.Range, error) {
	if rung < isolation.Userns {
		return idmap.Range{}, nil
	}
	if !ids.IsZero() {
		return ids, nil
	}
	cs, err := a.db.Containers()
	if err != nil {
		return idmap.Range{}, err
	}
	var used []idmap.Range
	for _, c := range cs {
		if c.Name != name {
			used = append(used, recordedIDs(c))
		}
	}
	r, err := idmap.Next(used)
	if err != nil {
		return idmap.Range{}, api.Unavailable("%s: %v", name, err)
	}
	return r, nil
}

// recordedIDs is the range of host ids recorded for c.
func recordedIDs(c state.Container) idmap.Range {
	return idmap.Range{Base: c.IDBase, Size: c.IDSize}
}

// UseCgroups gives the containers started from now on a cgroup in h,
// with their manifest's limits and, where it names none, the node's
// defaults (cgroup.DefaultLimits of the machine's memory).
func (a *Service) UseCgroups(h *cgroup.Hierarchy, total uint64) {
	def := cgroup.DefaultLimits(total)
	a.defaults.Store(&def)
	a.sup.UseCgroups(h)
}

// limits are spec's limits, the node's defaults filling what the
// manifest leaves unset.
func (a *Service) limits(l cgroup.Limits) cgroup.Limits {
	def := a.defaults.Load()
	if def == nil {
		return l
	}
	if l.Memory == 0 {
		l.Memory = def.Memory
	}
	if l.Pids == 0 {
		l.Pids = def.Pids
	}
	return l
}

// Stop stops every container in parallel (each with its own stop
// timeout), until ctx ends, and then waits up to drain for their last
// events to be recorded: the shutdown calls it before closing state.db.
//
// by says who asked for the shutdown (ShutdownOperator for the API):
// the boot's last Alive mark, for the next boot's boot-loop protection,
// is written first, so that what the stop costs does not count.
func (a *Service) Stop(ctx context.Context, drain time.Duration, by string) error {
	a.alive.shutdown(by)
	err := a.sup.StopAll(ctx)
	a.events.drain(drain)
	return err
}
