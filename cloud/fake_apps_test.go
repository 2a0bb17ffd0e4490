package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"

	"allium/api"
)

// fakeApps is a node's images and containers, in memory: uploads are
// kept as bytes, checked against their digest and named from their
// manifest; containers run at once unless a script says otherwise.
type fakeApps struct {
	mu         sync.Mutex
	images     map[string]api.Image
	uploads    map[string][]byte
	containers map[string]api.Container
	scripts    map[string][]string // container name: the states successive GETs see
	logs       map[string][]string
	stats      map[string]api.ContainerStats
	events     []api.Event
	puts       []int64 // the offset of each PutImage
	actions    []string

	// statsHang, when set, names a container whose stats never come
	// (until the request is given up).
	statsHang string

	// dropAt, when > 0, makes the next PutImage keep the body up to
	// that offset and then kill the connection.
	dropAt int64
	// later makes start, stop and restart answer before they act, as
	// the node's supervisor does: the container stays as it was (its
	// script says what comes next).
	later bool
}

func newFakeApps() *fakeApps {
	return &fakeApps{
		images:     map[string]api.Image{},
		uploads:    map[string][]byte{},
		containers: map[string]api.Container{},
		scripts:    map[string][]string{},
		logs:       map[string][]string{},
	}
}

func (f *fakeApps) Images(context.Context) ([]api.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Image
	for _, img := range f.images {
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out, nil
}

func (f *fakeApps) Image(_ context.Context, d string) (api.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	img, ok := f.images[d]
	if !ok {
		return img, api.NotFound("no image %s", d)
	}
	return img, nil
}

func (f *fakeApps) UploadOffset(_ context.Context, d string) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(len(f.uploads[d])), nil
}

func (f *fakeApps) PutImage(ctx context.Context, d string, offset, total int64, body io.Reader) (api.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts = append(f.puts, offset)
	if have := int64(len(f.uploads[d])); have != offset {
		return api.Image{}, api.OffsetMismatch(d, have)
	}
	var buf bytes.Buffer
	if f.dropAt > offset {
		io.CopyN(&buf, body, f.dropAt-offset)
		f.uploads[d] = append(f.uploads[d], buf.Bytes()...)
		f.dropAt = 0
		panic(http.ErrAbortHandler) // the connection drops
	}
	_, err := io.Copy(&buf, body)
	f.uploads[d] = append(f.uploads[d], buf.Bytes()...)
	if err != nil {
		return api.Image{}, err
	}
	return f.unpack(ctx, d)
}

func (f *fakeApps) unpack(ctx context.Context, d string) (api.Image, error) {
	b := f.uploads[d]
	delete(f.uploads, d)
	if got := digestOf(b); got != d {
		return api.Image{}, api.BadRequest("digest mismatch: the archive's is %s", got)
	}
	m, err := readManifest(ctx, bytes.NewReader(b))
	if err != nil {
		return api.Image{}, api.BadRequest("%v", err)
	}
	img := api.Image{Digest: d, Name: m.Name, Size: int64(len(b)), Created: time.Now().Add(-time.Hour)}
	f.images[d] = img
	return img, nil
}

// Uploads lists the partial uploads, which expire a day after now.
func (f *fakeApps) Uploads(context.Context) ([]api.Upload, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Upload
	for d, b := range f.uploads {
		now := time.Now().UTC()
		out = append(out, api.Upload{Digest: d, Size: int64(len(b)), Modified: now, Expires: now.Add(24 * time.Hour)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out, nil
}

func (f *fakeApps) RemoveImage(_ context.Context, d string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.uploads[d]; ok {
		delete(f.uploads, d)
		return nil
	}
	if _, ok := f.images[d]; !ok {
		return api.NotFound("no image %s", d)
	}
	for _, c := range f.containers {
		if c.Image == d {
			return api.Conflict("image %s is used by %s", d, c.Name)
		}
	}
	delete(f.images, d)
	return nil
}

func (f *fakeApps) Containers(context.Context) ([]api.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Container
	for _, c := range f.containers {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Container answers the next state of the container's script.
func (f *fakeApps) Container(_ context.Context, name string) (api.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[name]
	if !ok {
		return c, api.NotFound("no container %q", name)
	}
	if s := f.scripts[name]; len(s) > 0 {
		if s[0] != "" { // "": as it was
			c = enter(c, s[0])
		}
		f.scripts[name] = s[1:]
		f.containers[name] = c
	}
	return c, nil
}

// enter puts c in state, with what goes with it.
func enter(c api.Container, state string) api.Container {
	c.State, c.PID, c.Started = state, 0, time.Time{}
	switch state {
	case api.StateRunning, api.StateStarting:
		c.PID, c.Started = 4242, time.Now().Add(-90*time.Second)
	case api.StateBackoff:
		c.Restarts++
		c.LastExit = &api.Exit{Code: 3, Time: time.Now().Add(-time.Second)}
		c.NextRestart = time.Now().Add(2 * time.Second)
	}
	return c
}

func (f *fakeApps) PutContainer(_ context.Context, name string, req api.ContainerRequest) (api.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, "put "+name)
	img, ok := f.images[req.Image]
	if !ok {
		return api.Container{}, api.NotFound("image %s is not on the node", req.Image)
	}
	c, had := f.containers[name]
	if had && c.Image == req.Image {
		return c, nil
	}
	c = api.Container{Name: name, Image: img.Digest, ImageName: img.Name, Desired: "running", Isolation: "chroot"}
	first := api.StateRunning
	if s := f.scripts[name]; len(s) > 0 {
		first = api.StateStarting
	}
	f.containers[name] = enter(c, first)
	return f.containers[name], nil
}

func (f *fakeApps) StartContainer(_ context.Context, name string) (api.Container, error) {
	return f.act("start", name, api.StateRunning, "running")
}

func (f *fakeApps) StopContainer(_ context.Context, name string) (api.Container, error) {
	f.mu.Lock()
	f.scripts[name] = []string{api.StateStopped} // the next GET sees it stopped
	f.mu.Unlock()
	return f.act("stop", name, api.StateStopping, "stopped")
}

func (f *fakeApps) RestartContainer(_ context.Context, name string) (api.Container, error) {
	return f.act("restart", name, api.StateRunning, "running")
}

func (f *fakeApps) SignalContainer(_ context.Context, name, signal string) (api.Container, error) {
	return f.act("kill "+signal, name, api.StateRunning, "running")
}

func (f *fakeApps) act(action, name, state, desired string) (api.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, action+" "+name)
	c, ok := f.containers[name]
	if !ok {
		return c, api.NotFound("no container %q", name)
	}
	if f.later {
		return c, nil
	}
	c = enter(c, state)
	c.Desired = desired
	f.containers[name] = c
	return c, nil
}

func (f *fakeApps) RemoveContainer(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, "rm "+name)
	if _, ok := f.containers[name]; !ok {
		return api.NotFound("no container %q", name)
	}
	delete(f.containers, name)
	return nil
}

func (f *fakeApps) ContainerStats(ctx context.Context, name string) (api.ContainerStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.containers[name]; !ok {
		return api.ContainerStats{}, api.NotFound("no container %q", name)
	}
	if name == f.statsHang {
		f.mu.Unlock()
		<-ctx.Done()
		f.mu.Lock()
		return api.ContainerStats{}, ctx.Err()
	}
	st := f.stats[name]
	st.Name = name
	return st, nil
}

func (f *fakeApps) Logs(ctx context.Context, name string, opts api.LogOptions, w io.Writer) error {
	f.mu.Lock()
	lines, ok := f.logs[name]
	f.mu.Unlock()
	if !ok {
		return api.NotFound("no container %q", name)
	}
	if opts.Tail >= 0 && opts.Tail < len(lines) {
		lines = lines[len(lines)-opts.Tail:]
	}
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	if opts.Follow {
		fmt.Fprintln(w, "2026-01-02T03:04:09Z stdout followed")
	}
	return nil // the node ends a followed stream: the container went away
}

func (f *fakeApps) Events(ctx context.Context, follow bool, emit func(api.Event) error) error {
	f.mu.Lock()
	events := append([]api.Event(nil), f.events...)
	f.mu.Unlock()
	for _, e := range events {
		if err := emit(e); err != nil {
			return err
		}
	}
	if follow {
		return emit(api.Event{Type: api.EventStop, Container: "foo", Message: "followed"})
	}
	return nil
}
