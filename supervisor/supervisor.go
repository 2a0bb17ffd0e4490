package supervisor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"allium/supervisor/cgroup"
	"allium/supervisor/restart"

	"allium/internal/child"

	"golang.org/x/sys/unix"

	"allium/internal/safe"
)

// Killer sends a signal; a negative pid is a process group.
type Killer interface {
	Kill(pid int, sig unix.Signal) error
}

type unixKiller struct{}

func (unixKiller) Kill(pid int, sig unix.Signal) error { return unix.Kill(pid, sig) }

// Network attaches the runs of containers with a private network
// (Spec.PrivateNet) to the node's network.
type Network interface {
	// Attach is called once for each run, after the shim has started in
	// its new namespaces and before it starts the workload: pid is the
	// shim's, and its network namespace the run's. An error fails the
	// run: the shim is killed, the restart policy counts a failure, and
	// the error shows in Status.
	Attach(ctx context.Context, name string, pid int) error
}

// Options configure a Supervisor. Starter is required.
type Options struct {
	// Exe is the binary started as "init shim"; "" means
	// /proc/self/exe, PID 1 itself.
	Exe string
	// Starter starts the shim and delivers its wait status: PID 1's
	// reaper (tests: testkit.Starter). Without one, every container
	// fails to start with child.ErrNoStarter.
	Starter child.Starter
	// Network attaches the private networks; nil means none: a
	// container with Spec.PrivateNet fails to start (ErrNoNetwork).
	Network Network
	// Killer signals process groups; nil means kill(2).
	Killer Killer
	// Rand returns numbers in [0, 1) for the restart jitter; nil means
	// math/rand/v2's Float64.
	Rand func() float64
	// OnEvent receives every event, in order per container, on the
	// container's goroutine: it must return quickly (hand the event to
	// a channel) and must not call Stop, Remove or Replace of the same
	// container, which would wait for that goroutine. Status and List
	// are fine. nil drops them.
	OnEvent func(Event)
	// Log receives what has nowhere else to go (recovered panics); nil
	// means slog.Default().
	Log *slog.Logger
	// Logs bounds each container's log files.
	Logs LogLimits
}

// Supervisor runs containers: one goroutine per container owns its
// state (container.go). Its methods are safe for concurrent use.
type Supervisor struct {
	opts Options

	mu         sync.Mutex
	containers map[string]*container
	frozen     chan struct{} // while frozen (Freeze): closed by Thaw

	cgroups atomic.Pointer[cgroup.Hierarchy] // set by UseCgroups
}

// UseCgroups gives the containers started from now on a cgroup in h
// (containers/NAME, with Spec.Limits). Until then, and on a node
// without cgroups, they have none: the node finds its hierarchy after
// the supervisor is made.
func (s *Supervisor) UseCgroups(h *cgroup.Hierarchy) { s.cgroups.Store(h) }

// HasCgroups reports whether containers get a cgroup with their limits.
func (s *Supervisor) HasCgroups() bool { return s.hierarchy() != nil }

// hierarchy is where containers get their cgroup, or nil.
func (s *Supervisor) hierarchy() *cgroup.Hierarchy { return s.cgroups.Load() }

// New returns a Supervisor with no containers.
func New(opts Options) *Supervisor {
	if opts.Exe == "" {
		opts.Exe = "/proc/self/exe"
	}
	if opts.Killer == nil {
		opts.Killer = unixKiller{}
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Supervisor{opts: opts, containers: map[string]*container{}}
}

// Add puts a container under supervision with the history the caller
// kept, and starts it if desiredRunning (a boot restoring it: this is
// not an operator start, so a crashloop stays). Otherwise it is stopped.
func (s *Supervisor) Add(spec Spec, hist restart.History, desiredRunning bool) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.frozen != nil {
		return ErrFrozen
	}
	if _, ok := s.containers[spec.Name]; ok {
		return fmt.Errorf("%w: %s", ErrExists, spec.Name)
	}
	c := newContainer(s, spec, hist.Clone())
	s.containers[spec.Name] = c
	safe.Go(s.opts.Log, "supervisor: "+spec.Name, func() { c.loop(desiredRunning) })
	return nil
}

// Start is the operator's start: it clears a crashloop and starts the
// container now unless it runs. It does not wait.
func (s *Supervisor) Start(name string) error { return s.post(name, event{kind: kStart}) }

// Restart is the operator's restart: stop (signal, grace, SIGKILL) and
// start again; it clears a crashloop and does not count as a failure. It
// does not wait.
func (s *Supervisor) Restart(name string) error { return s.post(name, event{kind: kRestart}) }

// Signal sends sig to the process group of the container's workload. A
// container that is not running answers ErrNotRunning. If the workload
// dies of it, the restart policy applies: that is a crash, not a stop.
func (s *Supervisor) Signal(ctx context.Context, name string, sig unix.Signal) error {
	return s.call(ctx, name, event{kind: kSignal, sig: sig})
}

// Stop stops the container and returns once it is down, or when ctx
// ends (the stop goes on).
func (s *Supervisor) Stop(ctx context.Context, name string) error {
	return s.call(ctx, name, event{kind: kStop})
}

// Remove stops the container and forgets it. Its logs stay on disk.
func (s *Supervisor) Remove(ctx context.Context, name string) error {
	return s.call(ctx, name, event{kind: kRemove})
}

// Replace stops the container named spec.Name and starts spec in its
// place, as an operator start. It returns once the new run has been
// started (or has failed to start: see Status).
func (s *Supervisor) Replace(ctx context.Context, spec Spec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	return s.call(ctx, spec.Name, event{kind: kReplace, spec: &spec})
}

// Status is the container's status, and false if there is none.
func (s *Supervisor) Status(name string) (Status, bool) {
	c := s.get(name)
	if c == nil {
		return Status{}, false
	}
	return *c.status.Load(), true
}

// List is every container's status, by name.
func (s *Supervisor) List() []Status {
	s.mu.Lock()
	out := make([]Status, 0, len(s.containers))
	for _, c := range s.containers {
		out = append(out, *c.status.Load())
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Status) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// StopAll stops every container in parallel, for shutdown, and returns
// once all are down or ctx ends.
func (s *Supervisor) StopAll(ctx context.Context) error {
	s.mu.Lock()
	names := make([]string, 0, len(s.containers))
	for n := range s.containers {
		names = append(names, n)
	}
	s.mu.Unlock()
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		safe.Go(s.opts.Log, "supervisor: stop "+n, func() {
			defer wg.Done()
			if err := s.Stop(ctx, n); err != nil && !errors.Is(err, ErrNotFound) {
				errs[i] = err
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *Supervisor) get(name string) *container {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.containers[name]
}

// forget drops c, once removed, so that its name can be added again.
func (s *Supervisor) forget(c *container) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.containers[c.spec.Name] == c {
		delete(s.containers, c.spec.Name)
	}
}

// post sends ev without waiting for it to be handled.
func (s *Supervisor) post(name string, ev event) error {
	if s.isFrozen() {
		return ErrFrozen
	}
	if c := s.get(name); c != nil && c.send(ev) {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrNotFound, name)
}

// call sends ev and waits for its reply.
func (s *Supervisor) call(ctx context.Context, name string, ev event) error {
	if s.isFrozen() {
		return ErrFrozen
	}
	c := s.get(name)
	if c == nil {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	ev.reply = make(chan error, 1)
	select {
	case c.events <- ev:
	case <-c.done:
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	case <-ctx.Done():
		return fmt.Errorf("supervisor: %s: %w", name, ctx.Err())
	}
	select {
	case err := <-ev.reply:
		return err
	case <-c.done:
		select {
		case err := <-ev.reply:
			return err
		default:
			return fmt.Errorf("%w: %s", ErrRemoved, name)
		}
	case <-ctx.Done():
		return fmt.Errorf("supervisor: %s: %w", name, ctx.Err())
	}
}
