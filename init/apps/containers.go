package apps

import (
	"context"

	"allium/supervisor/isolation"
	"allium/supervisor/restart"

	"allium/manifest"

	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"

	"golang.org/x/sys/unix"

	"allium/api"
	"allium/imagestore"
	"allium/state"
	"allium/supervisor"
)

func (a *Service) Containers(ctx context.Context) ([]api.Container, error) {
	cs, err := a.db.Containers()
	if err != nil {
		return nil, err
	}
	out := make([]api.Container, 0, len(cs))
	for _, c := range cs {
		out = append(out, a.view(c))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (a *Service) Container(ctx context.Context, name string) (api.Container, error) {
	c, err := a.record(name)
	if err != nil {
		return api.Container{}, err
	}
	return a.view(c), nil
}

// record reads name's record, or answers NotFound.
func (a *Service) record(name string) (state.Container, error) {
	cs, err := a.db.Containers()
	if err != nil {
		return state.Container{}, err
	}
	for _, c := range cs {
		if c.Name == name {
			return c, nil
		}
	}
	return state.Container{}, api.NotFound("no container %q on this node", name)
}

// view is what the API shows of a container.
func (a *Service) view(c state.Container) api.Container {
	out := api.Container{Name: c.Name, Image: c.Image, Desired: desired(c.Running), State: api.StateStopped, Isolation: c.Isolation,
		Address: c.Address}
	if out.Isolation == "" {
		out.Isolation = isolation.Chroot.String() // recorded before rungs were
	}
	if ids := recordedIDs(c); !ids.IsZero() {
		out.IDs = ids.String()
	}
	if c.Running {
		out.Held = c.BootLoop.Held
	}
	if i, err := a.store.Image(c.Image); err == nil {
		out.ImageName = i.Name
	}
	st, ok := a.sup.Status(c.Name)
	if !ok {
		out.State, out.Error = api.StateFailed, "not supervised: see the node's console"
		return out
	}
	out.State, out.PID, out.Started, out.Restarts = st.State.String(), st.PID, st.Started, st.Restarts
	out.NextRestart, out.Error = st.NextRestart, st.Error
	if e := st.LastExit; e != nil {
		out.LastExit = &api.Exit{Code: e.Code, Signal: e.Signal, Time: e.Time, OOM: e.OOM}
	}
	return out
}

func desired(running bool) string {
	if running {
		return "running"
	}
	return "stopped"
}

func (a *Service) PutContainer(ctx context.Context, name string, req api.ContainerRequest) (api.Container, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m, err := a.store.Manifest(req.Image)
	if errors.Is(err, imagestore.ErrNotFound) {
		return api.Container{}, api.NotFound("image %s is not on this node; push it first", req.Image)
	}
	if err != nil {
		return api.Container{}, err
	}
	old, err := a.record(name)
	exists := err == nil
	if exists && old.Image == req.Image {
		if !old.Running || old.BootLoop.Held != "" {
			return a.StartContainer(ctx, name)
		}
		return a.view(old), nil // the same image again changes nothing
	}
	if exists {
		if err := a.sup.Remove(ctx, name); err != nil && !errors.Is(err, supervisor.ErrNotFound) {
			return api.Container{}, fmt.Errorf("stop %s before replacing it: %w", name, err)
		}
		if err := a.roots.reset(name); err != nil {
			a.log.Warn("apps: clearing the old root", "container", name, "err", err)
		}
		a.dropNet(name) // the new image may publish other ports, or none
	}
	if err := a.add(name, req.Image, m, restart.History{}, true, recordedIDs(old), state.BootLoop{}); err != nil {
		return api.Container{}, err
	}
	if exists {
		a.collect()
	}
	return a.Container(ctx, name)
}

func (a *Service) StartContainer(ctx context.Context, name string) (api.Container, error) {
	return a.operator(ctx, name, true, func() error { return a.sup.Start(name) })
}

func (a *Service) StopContainer(ctx context.Context, name string) (api.Container, error) {
	return a.operator(ctx, name, false, func() error { return a.sup.Stop(ctx, name) })
}

func (a *Service) RestartContainer(ctx context.Context, name string) (api.Container, error) {
	return a.operator(ctx, name, true, func() error { return a.sup.Restart(name) })
}

// SignalContainer signals the workload; dying of it is a crash, and the
// restart policy applies, so the operator's wish does not change.
func (a *Service) SignalContainer(ctx context.Context, name, signal string) (api.Container, error) {
	if _, err := a.record(name); err != nil {
		return api.Container{}, err
	}
	sig := unix.SIGKILL
	if signal != "" {
		n, err := manifest.ParseSignal(signal)
		if err != nil {
			return api.Container{}, api.BadRequest("signal %v", err)
		}
		sig = unix.Signal(n)
	}
	err := a.sup.Signal(ctx, name, sig)
	if errors.Is(err, supervisor.ErrNotRunning) {
		return api.Container{}, api.Conflict("%s is not running", name)
	}
	if err != nil {
		return api.Container{}, err
	}
	return a.Container(ctx, name)
}

// operator records the operator's wish, then acts on it.
func (a *Service) operator(ctx context.Context, name string, running bool, act func() error) (api.Container, error) {
	found, err := a.db.UpdateContainer(name, func(c *state.Container) {
		c.Running = running
		if running {
			c.BootLoop.Downs, c.BootLoop.Held = 0, "" // the operator's start clears boot-loop protection
		}
	})
	if err != nil {
		return api.Container{}, err
	}
	if !found {
		return api.Container{}, api.NotFound("no container %q on this node", name)
	}
	if err := act(); err != nil {
		return api.Container{}, err
	}
	return a.Container(ctx, name)
}

func (a *Service) RemoveContainer(ctx context.Context, name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.record(name); err != nil {
		if !isNotFound(err) || !slices.Contains(a.roots.onDisk(), name) {
			return err
		}
		// A root left on disk without a record (state.db recovered
		// without it, and it could not be rebuilt): remove it.
	}
	if err := a.sup.Remove(ctx, name); err != nil && !errors.Is(err, supervisor.ErrNotFound) {
		return err
	}
	if err := a.db.DeleteContainer(name); err != nil {
		return err
	}
	a.dropNet(name) // its address is free with its record
	if err := a.roots.remove(name); err != nil {
		a.log.Warn("apps: removing the root", "container", name, "err", err)
	}
	a.collect()
	return nil
}

// Held says, for `cloud info`, which containers boot-loop protection
// holds and why.
func (a *Service) Held() []string {
	cs, err := a.db.Containers()
	if err != nil {
		return nil
	}
	var out []string
	for _, c := range cs {
		if c.Running && c.BootLoop.Held != "" {
			out = append(out, "container "+c.Name+": "+c.BootLoop.Held)
		}
	}
	return out
}

func (a *Service) Logs(ctx context.Context, name string, opts api.LogOptions, w io.Writer) error {
	if _, err := a.record(name); err != nil {
		return err
	}
	dir := a.roots.logs(name)
	if !opts.Follow {
		lines, err := supervisor.ReadLogs(dir, opts.Tail)
		if err != nil {
			return err
		}
		for _, l := range lines {
			if _, err := io.WriteString(w, l+"\n"); err != nil {
				return err
			}
		}
		return nil
	}
	for l := range supervisor.Follow(ctx, dir, opts.Tail) {
		if _, err := io.WriteString(w, l+"\n"); err != nil {
			return err
		}
	}
	return nil
}

func (a *Service) Events(ctx context.Context, follow bool, emit func(api.Event) error) error {
	return a.events.stream(ctx, follow, emit)
}

// ContainerStats reads what the container's cgroup uses now.
func (a *Service) ContainerStats(ctx context.Context, name string) (api.ContainerStats, error) {
	if _, err := a.record(name); err != nil {
		return api.ContainerStats{}, err
	}
	st, ok, err := a.sup.Stats(name)
	if err != nil {
		return api.ContainerStats{}, err
	}
	out := api.ContainerStats{Name: name, Cgroup: ok}
	if ok {
		out.CPUSeconds, out.Memory, out.MemoryPeak, out.Pids = st.CPU.Seconds(), st.Memory, st.MemoryPeak, st.Pids
		out.IORead, out.IOWrite, out.OOMKills = st.IORead, st.IOWrite, st.OOMKills
	}
	return out, nil
}

func isNotFound(err error) bool {
	var e *api.Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}
