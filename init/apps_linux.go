package main

import (
	"context"

	"allium/supervisor/restart"

	"allium/manifest"

	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"allium/api"
	"allium/imagestore"
	"allium/state"
	"allium/supervisor"
)

// apps is the node's images and containers: api.Apps over the image
// store, the supervisor and state.db. state.db holds what the operator
// asked for (image, running or not, the restart history); the
// supervisor holds what is happening now.
type apps struct {
	log    *slog.Logger
	db     *state.DB
	store  *imagestore.Store
	sup    *supervisor.Supervisor
	roots  roots
	events *eventHub

	// mu serializes changes to the set of containers (create, replace,
	// remove), so two PUTs of one name cannot interleave.
	mu sync.Mutex
}

var _ api.Apps = (*apps)(nil)

// gcGrace keeps a freshly pushed image from being collected before the
// PUT of its container arrives.
const gcGrace = 15 * time.Minute

func (a *apps) Images(ctx context.Context) ([]api.Image, error) {
	infos, err := a.store.List()
	if err != nil {
		return nil, err
	}
	users := a.imageUsers()
	out := make([]api.Image, 0, len(infos))
	for _, i := range infos {
		out = append(out, toImage(i, users[i.Digest]))
	}
	return out, nil
}

func (a *apps) Image(ctx context.Context, digest string) (api.Image, error) {
	i, err := a.store.Image(digest)
	if errors.Is(err, imagestore.ErrNotFound) {
		return api.Image{}, api.NotFound("image %s is not on this node", digest)
	}
	if err != nil {
		return api.Image{}, err
	}
	return toImage(i, a.imageUsers()[digest]), nil
}

func toImage(i imagestore.Info, users []string) api.Image {
	return api.Image{Digest: i.Digest, Name: i.Name, Size: i.Size, Created: i.Created, UsedBy: users}
}

// imageUsers maps each digest to the containers that run it.
func (a *apps) imageUsers() map[string][]string {
	cs, err := a.db.Containers()
	if err != nil {
		a.log.Error("apps: reading containers", "err", err)
	}
	users := map[string][]string{}
	for _, c := range cs {
		users[c.Image] = append(users[c.Image], c.Name)
	}
	return users
}

func (a *apps) UploadOffset(ctx context.Context, digest string) (int64, error) {
	return a.store.Offset(digest), nil
}

func (a *apps) PutImage(ctx context.Context, digest string, offset, total int64, body io.Reader) (api.Image, error) {
	kept, err := a.store.Write(ctx, digest, offset, total, body)
	if err != nil {
		return api.Image{}, imageError(digest, err)
	}
	if kept < total {
		return api.Image{}, fmt.Errorf("upload of %s stopped at %d of %d bytes", digest, kept, total)
	}
	img, err := a.Image(ctx, digest)
	if err == nil {
		a.events.publish(api.Event{Type: api.EventImage, Image: digest, Message: fmt.Sprintf("image %s (%s) unpacked", img.Name, digest)})
	}
	return img, err
}

// imageError maps the store's errors to honest statuses.
func imageError(digest string, err error) error {
	var off *imagestore.OffsetError
	switch {
	case errors.As(err, &off):
		return api.OffsetMismatch(digest, off.Kept)
	case errors.Is(err, imagestore.ErrBusy):
		return api.UploadBusy("%v", err)
	case errors.Is(err, imagestore.ErrTooLarge):
		return api.TooLarge("%v", err)
	case errors.Is(err, imagestore.ErrBadDigest), errors.Is(err, imagestore.ErrDigest),
		errors.Is(err, imagestore.ErrInvalid):
		return api.BadRequest("%v", err)
	}
	return err
}

func (a *apps) RemoveImage(ctx context.Context, digest string) error {
	if users := a.imageUsers()[digest]; len(users) > 0 {
		return api.Conflict("image %s is used by %v; remove those containers first", digest, users)
	}
	err := a.store.Remove(digest)
	if errors.Is(err, imagestore.ErrNotFound) {
		return api.NotFound("image %s is not on this node", digest)
	}
	return err
}

// collect removes images no container uses, but for fresh ones.
func (a *apps) collect() {
	users := a.imageUsers()
	removed, err := a.store.GC(func(d string) bool {
		if len(users[d]) > 0 {
			return true
		}
		i, err := a.store.Image(d)
		return err == nil && time.Since(i.Created) < gcGrace
	})
	if err != nil {
		a.log.Error("apps: collecting images", "err", err)
	}
	for _, d := range removed {
		a.events.publish(api.Event{Type: api.EventImage, Image: d, Message: "image " + d + " collected: no container uses it"})
	}
}

func (a *apps) Containers(ctx context.Context) ([]api.Container, error) {
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

func (a *apps) Container(ctx context.Context, name string) (api.Container, error) {
	c, err := a.record(name)
	if err != nil {
		return api.Container{}, err
	}
	return a.view(c), nil
}

// record reads name's record, or answers NotFound.
func (a *apps) record(name string) (state.Container, error) {
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
func (a *apps) view(c state.Container) api.Container {
	out := api.Container{Name: c.Name, Image: c.Image, Desired: desired(c.Running), State: api.StateStopped, Isolation: "chroot"}
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
		out.LastExit = &api.Exit{Code: e.Code, Signal: e.Signal, Time: e.Time}
	}
	return out
}

func desired(running bool) string {
	if running {
		return "running"
	}
	return "stopped"
}

func (a *apps) PutContainer(ctx context.Context, name string, req api.ContainerRequest) (api.Container, error) {
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
		if !old.Running {
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
	}
	if err := a.add(name, req.Image, m, restart.History{}, true); err != nil {
		return api.Container{}, err
	}
	if exists {
		a.collect()
	}
	return a.Container(ctx, name)
}

// add prepares name's root, records it and hands it to the supervisor.
func (a *apps) add(name, image string, m *manifest.Manifest, hist restart.History, running bool) error {
	mode, err := a.roots.prepare(name, a.store.RootFS(image), m)
	if err != nil {
		return api.Unavailable("prepare the root of %s: %v", name, err)
	}
	a.log.Info("apps: root ready", "container", name, "mode", mode)
	spec, err := supervisor.FromManifest(m, name, a.roots.root(name), a.roots.logs(name))
	if err != nil {
		return api.BadRequest("%s: %v", name, err)
	}
	h, _ := json.Marshal(hist)
	if err := a.db.PutContainer(state.Container{Name: name, Image: image, Running: running, History: h}); err != nil {
		return err
	}
	return a.sup.Add(spec, hist, running)
}

func (a *apps) StartContainer(ctx context.Context, name string) (api.Container, error) {
	return a.operator(ctx, name, true, func() error { return a.sup.Start(name) })
}

func (a *apps) StopContainer(ctx context.Context, name string) (api.Container, error) {
	return a.operator(ctx, name, false, func() error { return a.sup.Stop(ctx, name) })
}

func (a *apps) RestartContainer(ctx context.Context, name string) (api.Container, error) {
	return a.operator(ctx, name, true, func() error { return a.sup.Restart(name) })
}

// SignalContainer signals the workload; dying of it is a crash, and the
// restart policy applies, so the operator's wish does not change.
func (a *apps) SignalContainer(ctx context.Context, name, signal string) (api.Container, error) {
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
func (a *apps) operator(ctx context.Context, name string, running bool, act func() error) (api.Container, error) {
	found, err := a.db.UpdateContainer(name, func(c *state.Container) { c.Running = running })
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

func (a *apps) RemoveContainer(ctx context.Context, name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.record(name); err != nil {
		return err
	}
	if err := a.sup.Remove(ctx, name); err != nil && !errors.Is(err, supervisor.ErrNotFound) {
		return err
	}
	if err := a.db.DeleteContainer(name); err != nil {
		return err
	}
	if err := a.roots.remove(name); err != nil {
		a.log.Warn("apps: removing the root", "container", name, "err", err)
	}
	a.collect()
	return nil
}

func (a *apps) Logs(ctx context.Context, name string, opts api.LogOptions, w io.Writer) error {
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

func (a *apps) Events(ctx context.Context, follow bool, emit func(api.Event) error) error {
	return a.events.stream(ctx, follow, emit)
}
