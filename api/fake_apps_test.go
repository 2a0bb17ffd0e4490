package api

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"allium/internal/testkit"
)

// fakeApps is an in-memory node: images, partial uploads, containers,
// log lines and events.
type fakeApps struct {
	mu         sync.Mutex
	images     map[string]Image
	uploads    map[string][]byte
	containers map[string]Container
	logs       map[string][]string
	events     []Event
	puts       []int64  // the offset of each PutImage call
	signals    []string // "NAME SIGNAL" of each SignalContainer call
	busy       int      // PutImage answers upload_busy this many times first
	fail       error    // when set, RemoveImage and RemoveContainer return it
	limit      int64    // when > 0, PutImage refuses a longer archive before reading it

	// dropAt, when > 0, makes the next PutImage keep the body up to
	// that offset and then kill the connection.
	dropAt int64
	// stallAt, when > 0, makes the next PutImage stop reading at that
	// offset until its request ends.
	stallAt int64

	newLines  chan string // log lines for followers of any container
	newEvents chan Event
	followers chan struct{} // a follower ended
}

func newFakeApps() *fakeApps {
	return &fakeApps{
		images:     map[string]Image{},
		uploads:    map[string][]byte{},
		containers: map[string]Container{},
		logs:       map[string][]string{},
		newLines:   make(chan string),
		newEvents:  make(chan Event),
		followers:  make(chan struct{}, 10),
	}
}

func (f *fakeApps) Images(context.Context) ([]Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Image
	for _, img := range f.images {
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out, nil
}

func (f *fakeApps) Image(_ context.Context, d string) (Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	img, ok := f.images[d]
	if !ok {
		return Image{}, NotFound("no image %s", d)
	}
	return img, nil
}

func (f *fakeApps) UploadOffset(_ context.Context, d string) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(len(f.uploads[d])), nil
}

func (f *fakeApps) PutImage(ctx context.Context, d string, offset, total int64, body io.Reader) (Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts = append(f.puts, offset)
	if f.limit > 0 && total > f.limit {
		return Image{}, TooLarge("%d bytes do not fit in %d", total, f.limit)
	}
	if f.busy > 0 {
		f.busy--
		return Image{}, UploadBusy("another upload of %s is under way", d)
	}
	if have := int64(len(f.uploads[d])); have != offset {
		return Image{}, OffsetMismatch(d, have)
	}
	if f.dropAt > offset {
		io.CopyN(f.buffer(d), body, f.dropAt-offset)
		f.dropAt = 0
		panic(http.ErrAbortHandler) // the connection drops
	}
	if f.stallAt > offset {
		io.CopyN(f.buffer(d), body, f.stallAt-offset)
		f.stallAt = 0
		f.mu.Unlock()
		// The server notices a gone client only once it reads the body.
		testkit.Sleep(ctx, 1500*time.Millisecond)
		f.mu.Lock()
		_, err := io.Copy(io.Discard, body)
		return Image{}, err
	}
	_, err := io.Copy(f.buffer(d), body)
	if err != nil {
		return Image{}, err
	}
	return f.finish(d, total)
}

// buffer appends to the upload of d.
func (f *fakeApps) buffer(d string) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		f.uploads[d] = append(f.uploads[d], p...)
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

func (f *fakeApps) finish(d string, total int64) (Image, error) {
	b := f.uploads[d]
	if int64(len(b)) != total {
		return Image{}, fmt.Errorf("have %d of %d bytes", len(b), total)
	}
	delete(f.uploads, d)
	if got := digestOf(b); got != d {
		return Image{}, BadRequest("digest mismatch: the archive's is %s", got)
	}
	img := Image{Digest: d, Name: "app", Size: total, Created: time.Unix(1700000000, 0).UTC()}
	f.images[d] = img
	return img, nil
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func (f *fakeApps) Uploads(context.Context) ([]Upload, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Upload
	for d, b := range f.uploads {
		out = append(out, Upload{Digest: d, Size: int64(len(b))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out, nil
}

func (f *fakeApps) RemoveImage(_ context.Context, d string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	if _, ok := f.images[d]; !ok {
		return NotFound("no image %s", d)
	}
	delete(f.images, d)
	return nil
}

func (f *fakeApps) Containers(context.Context) ([]Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Container
	for _, c := range f.containers {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (f *fakeApps) Container(_ context.Context, name string) (Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[name]
	if !ok {
		return Container{}, NotFound("no container %q", name)
	}
	return c, nil
}

func (f *fakeApps) PutContainer(_ context.Context, name string, req ContainerRequest) (Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	img, ok := f.images[req.Image]
	if !ok {
		return Container{}, NotFound("image %s is not on the node", req.Image)
	}
	c := Container{Name: name, Image: img.Digest, ImageName: img.Name, State: StateRunning, Desired: "running", PID: 42}
	f.containers[name] = c
	return c, nil
}

func (f *fakeApps) StartContainer(ctx context.Context, name string) (Container, error) {
	return f.setState(name, StateRunning, "running")
}

func (f *fakeApps) StopContainer(ctx context.Context, name string) (Container, error) {
	return f.setState(name, StateStopped, "stopped")
}

func (f *fakeApps) RestartContainer(ctx context.Context, name string) (Container, error) {
	return f.setState(name, StateRunning, "running")
}

func (f *fakeApps) SignalContainer(ctx context.Context, name, signal string) (Container, error) {
	f.mu.Lock()
	f.signals = append(f.signals, name+" "+signal)
	f.mu.Unlock()
	return f.setState(name, StateRunning, "running")
}

func (f *fakeApps) setState(name, state, desired string) (Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[name]
	if !ok {
		return Container{}, NotFound("no container %q", name)
	}
	c.State, c.Desired = state, desired
	f.containers[name] = c
	return c, nil
}

func (f *fakeApps) RemoveContainer(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	if _, ok := f.containers[name]; !ok {
		return NotFound("no container %q", name)
	}
	delete(f.containers, name)
	return nil
}

func (f *fakeApps) ContainerStats(ctx context.Context, name string) (ContainerStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.containers[name]; !ok {
		return ContainerStats{}, NotFound("no container %q", name)
	}
	return ContainerStats{Name: name, Cgroup: true, Pids: 3, Memory: 1 << 20}, nil
}

func (f *fakeApps) Logs(ctx context.Context, name string, opts LogOptions, w io.Writer) error {
	f.mu.Lock()
	lines, ok := f.logs[name]
	f.mu.Unlock()
	if !ok {
		return NotFound("no container %q", name)
	}
	if opts.Tail >= 0 && opts.Tail < len(lines) {
		lines = lines[len(lines)-opts.Tail:]
	}
	for _, l := range lines {
		if _, err := io.WriteString(w, l+"\n"); err != nil {
			return err
		}
	}
	if !opts.Follow {
		return nil
	}
	defer func() { f.followers <- struct{}{} }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case l := <-f.newLines:
			if _, err := io.WriteString(w, l+"\n"); err != nil {
				return err
			}
		}
	}
}

func (f *fakeApps) Events(ctx context.Context, follow bool, emit func(Event) error) error {
	f.mu.Lock()
	events := append([]Event(nil), f.events...)
	f.mu.Unlock()
	for _, e := range events {
		if err := emit(e); err != nil {
			return err
		}
	}
	if !follow {
		return nil
	}
	defer func() { f.followers <- struct{}{} }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e := <-f.newEvents:
			if err := emit(e); err != nil {
				return err
			}
		}
	}
}

// appsBackend is a fakeBackend whose apps are a fakeApps (its methods
// win over fakeBackend's embedded UnimplementedApps, being shallower).
type appsBackend struct {
	*fakeBackend
	*fakeApps
}

// startApps serves a fakeApps on a loopback TLS listener.
func startApps(t *testing.T) (*testNode, *fakeApps) {
	t.Helper()
	n := &testNode{key: newKey(t), client: newKey(t)}
	n.backend = &fakeBackend{node: Node{Name: "web1"}, authorized: n.client.Public().(ed25519.PublicKey)}
	apps := newFakeApps()
	n.serve(t, appsBackend{n.backend, apps})
	return n, apps
}

// zeroDigest is a well-formed digest of no image.
const zeroDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

// waitFollowerGone waits until a followed Logs or Events of the fake
// has ended.
func waitFollowerGone(t *testing.T, apps *fakeApps) {
	t.Helper()
	select {
	case <-apps.followers:
	case <-time.After(10 * time.Second):
		t.Fatal("the node kept following after the client went away")
	}
}

// archive is size bytes of reproducible noise to upload.
func archive(size int) []byte {
	b := make([]byte, size)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(b)
	return b
}
