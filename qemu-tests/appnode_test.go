package qemutests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"allium/api"
	"allium/internal/testkit"
)

// Waiting for apps. Like the boots, these deadlines are generous and no
// check asserts a time.
const (
	appWithin  = 60 * time.Second            // a container to get somewhere, the httpd to answer, a log line
	appPoll    = 200 * time.Millisecond      // between two polls of cloud ps, cloud logs or the httpd
	headPoll   = 100 * time.Millisecond      // between two HEADs of an upload
	callLimit  = 5 * time.Second             // one API call of the test's own client
	restoredOK = "apps: containers restored" // init's console line once a boot has restored the containers
)

// appNode is TestApps' appliance, its one QEMU process, and what the
// steps share.
type appNode struct {
	*appliance
	v     *vm
	api   *api.Client // the test's own client, for what cloud does not show
	url   string      // the httpd's index, through the forwarded port
	boots uint64      // the node's boot count
	im    images
}

func running(c api.Container) bool { return c.State == api.StateRunning && c.PID != 0 }

func stopped(c api.Container) bool {
	return c.State == api.StateStopped && c.Desired == "stopped" && c.PID == 0
}

// quiet runs cloud without logging it, for polls; a failure to run at
// all fails tb.
func (n *appNode) quiet(tb testing.TB, args ...string) result {
	tb.Helper()
	return n.runCloud(tb, n.config, args...)
}

// ps is cloud ps --json.
func (n *appNode) ps(tb testing.TB) ([]api.Container, result) {
	tb.Helper()
	r := n.quiet(tb, "ps", n.name, "--json")
	var cs []api.Container
	if r.code == 0 {
		if err := json.Unmarshal([]byte(r.stdout), &cs); err != nil {
			tb.Fatalf("cloud ps %s --json = %q: not a list of containers: %v", n.name, r.stdout, err)
		}
	}
	return cs, r
}

// container is the named container as cloud ps --json shows it, and
// whether it is listed; the node must answer.
func (n *appNode) container(tb testing.TB, name string) (api.Container, bool) {
	tb.Helper()
	cs, r := n.ps(tb)
	if r.code != 0 {
		tb.Fatalf("cloud ps %s --json = exit %d, %s, want 0", n.name, r.code, strings.TrimSpace(r.stderr))
	}
	i := slices.IndexFunc(cs, func(c api.Container) bool { return c.Name == name })
	if i < 0 {
		return api.Container{}, false
	}
	return cs[i], true
}

// waitContainer polls cloud ps --json until the named container
// satisfies ok, and returns it.
func (n *appNode) waitContainer(tb testing.TB, name, what string, ok func(api.Container) bool) api.Container {
	tb.Helper()
	deadline := time.Now().Add(appWithin)
	last := "(no answer yet)"
	for {
		cs, r := n.ps(tb)
		if r.code != 0 {
			last = strings.TrimSpace(r.stderr)
		} else if i := slices.IndexFunc(cs, func(c api.Container) bool { return c.Name == name }); i < 0 {
			last = "not listed: " + strings.Join(strings.Fields(r.stdout), " ")
		} else if ok(cs[i]) {
			return cs[i]
		} else {
			last = fmt.Sprintf("%+v", cs[i])
		}
		if time.Now().After(deadline) {
			tb.Fatalf("cloud ps %s --json: %s not %s within %v; last: %s", n.name, name, what, appWithin, last)
		}
		time.Sleep(appPoll)
	}
}

// images is cloud images --json.
func (n *appNode) images(tb testing.TB) []api.Image {
	tb.Helper()
	r := n.quiet(tb, "images", n.name, "--json")
	if r.code != 0 {
		tb.Fatalf("cloud images %s --json = exit %d, %s, want 0", n.name, r.code, strings.TrimSpace(r.stderr))
	}
	var imgs []api.Image
	if err := json.Unmarshal([]byte(r.stdout), &imgs); err != nil {
		tb.Fatalf("cloud images %s --json = %q: not a list of images: %v", n.name, r.stdout, err)
	}
	return imgs
}

// image is the image of digest as cloud images --json lists it.
func (n *appNode) image(tb testing.TB, digest string) (api.Image, bool) {
	tb.Helper()
	imgs := n.images(tb)
	i := slices.IndexFunc(imgs, func(img api.Image) bool { return img.Digest == digest })
	if i < 0 {
		return api.Image{}, false
	}
	return imgs[i], true
}

func digests(imgs []api.Image) []string {
	var ds []string
	for _, img := range imgs {
		ds = append(ds, img.Digest)
	}
	slices.Sort(ds)
	return ds
}

// imageState asks the node (HEAD) whether it has the image of digest
// and how many bytes of an upload of it it keeps.
func (n *appNode) imageState(tb testing.TB, digest string) (have bool, offset int64) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callLimit)
	defer cancel()
	have, offset, err := n.api.ImageState(ctx, digest)
	if err != nil {
		tb.Fatalf("HEAD /v1/images/%s: %v", digest, err)
	}
	return have, offset
}

// waitEvents polls cloud events --json until container's event types
// hold want in order, and returns all of them.
func (n *appNode) waitEvents(tb testing.TB, container string, want []string) []string {
	tb.Helper()
	deadline := time.Now().Add(appWithin)
	for {
		r := n.quiet(tb, "events", n.name, "--json")
		var types []string
		if r.code == 0 {
			types = eventTypes(tb, r.stdout, container)
			if subsequence(types, want) {
				tb.Logf("cloud events %s --json:\n%s", n.name, r.stdout)
				return types
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("cloud events %s --json: %s's types = %v within %v, want %v in that order; last: exit %d, %s",
				n.name, container, types, appWithin, want, r.code, strings.TrimSpace(r.stderr))
		}
		time.Sleep(appPoll)
	}
}

// eventTypes are the types of container's events in what cloud
// events --json printed, in order.
func eventTypes(tb testing.TB, out, container string) []string {
	tb.Helper()
	var types []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev api.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			tb.Fatalf("cloud events --json: line %q: not an event: %v", line, err)
		}
		if ev.Container == container {
			types = append(types, ev.Type)
		}
	}
	return types
}

// subsequence reports whether want appears in got in order, not
// necessarily next to each other.
func subsequence(got, want []string) bool {
	for _, g := range got {
		if len(want) > 0 && g == want[0] {
			want = want[1:]
		}
	}
	return len(want) == 0
}

// waitLogs polls cloud logs until ok holds for what it prints.
func (n *appNode) waitLogs(tb testing.TB, name, what string, ok func(string) bool) {
	tb.Helper()
	deadline := time.Now().Add(appWithin)
	for {
		r := n.quiet(tb, "logs", n.name, name)
		if r.code == 0 && ok(r.stdout) {
			tb.Logf("cloud logs %s %s:\n%s", n.name, name, r.stdout)
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("cloud logs %s %s: no %s within %v; last: exit %d\nstdout: %s\nstderr: %s", n.name, name, what, appWithin, r.code, r.stdout, r.stderr)
		}
		time.Sleep(appPoll)
	}
}

// web is the client for the httpd: no connection outlives a request, so
// none outlives a reboot.
var web = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// httpGet fetches url once and returns the body of a 200.
func httpGet(url string) (string, error) {
	resp, err := web.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}

// waitServing polls the httpd through the forwarded port until it
// answers with its index.
func (n *appNode) waitServing(tb testing.TB, when string) {
	tb.Helper()
	deadline := time.Now().Add(appWithin)
	for {
		body, err := httpGet(n.url)
		if err == nil && body == indexBody {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("GET %s %s: no %q within %v; last: %q, %v", n.url, when, indexBody, appWithin, body, err)
		}
		time.Sleep(appPoll)
	}
}

// waitBoot waits for the boot after a reboot or a reset: the boot count
// one up, and the containers restored.
func (n *appNode) waitBoot(tb testing.TB, after string) {
	tb.Helper()
	start := time.Now()
	prev := n.boots
	node, _ := n.v.waitNode(tb, fmt.Sprintf("boot_count %d after %s", prev+1, after), func(node api.Node) bool { return node.BootCount > prev })
	if node.BootCount != prev+1 {
		tb.Errorf("cloud info %s --json after %s: boot_count = %d, want %d", n.name, after, node.BootCount, prev+1)
	}
	n.boots = node.BootCount
	n.v.waitConsole(tb, restoredOK, int(n.boots))
	tb.Logf("%s: boot %d answers and has restored its containers %.1f s after %s", n.name, n.boots, time.Since(start).Seconds(), after)
}

// reset hard-resets the VM from QEMU's monitor: a power cut, after which
// the same QEMU boots the node again.
func (n *appNode) reset(tb testing.TB, when string) {
	tb.Helper()
	tb.Logf("%s: system_reset %s", n.name, when)
	n.v.hmp(tb, "system_reset")
}

// push is a cloud start running in the background.
type push struct {
	file   string
	cancel context.CancelFunc
	done   chan struct{}        // closed once cloud has exited
	out    testkit.LockedBuffer // its stdout and stderr
	err    error                // Wait's, once done
}

// startBackground starts cloud start for file, not waiting for it.
func (n *appNode) startBackground(tb testing.TB, file string) *push {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &push{file: file, cancel: cancel, done: make(chan struct{})}
	cmd := exec.CommandContext(ctx, n.env.cloud, "--config", n.config, "start", n.name, file)
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	tb.Logf("in the background: cloud --config %s start %s %s", n.config, n.name, file)
	if err := cmd.Start(); err != nil {
		cancel()
		tb.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	tb.Cleanup(func() { p.cancel(); <-p.done })
	return p
}

// kill ends the background cloud start and logs what it printed.
func (p *push) kill(tb testing.TB) {
	tb.Helper()
	p.cancel()
	<-p.done
	tb.Logf("cloud start %s, killed: %v\n%s", p.file, p.err, p.out.String())
}

// waitUpload HEADs the upload of digest until ready says it is where the
// step wants it, and returns the node's offset then. ready's error, the
// background cloud exiting, or the deadline fail tb.
func (n *appNode) waitUpload(tb testing.TB, p *push, digest, what string, ready func(have bool, off int64) (bool, error)) int64 {
	tb.Helper()
	deadline := time.Now().Add(appWithin)
	last := "(no answer yet)"
	for {
		ctx, cancel := context.WithTimeout(context.Background(), callLimit)
		have, off, err := n.api.ImageState(ctx, digest)
		cancel()
		if err == nil {
			ok, err := ready(have, off)
			if err != nil {
				tb.Fatalf("HEAD /v1/images/%s: have %v, offset %d: %v", digest, have, off, err)
			}
			if ok {
				return off
			}
			last = fmt.Sprintf("have %v, offset %d", have, off)
		} else {
			last = err.Error()
		}
		select {
		case <-p.done:
			tb.Fatalf("cloud start %s exited (%v) before %s; HEAD said %s; it printed:\n%s", p.file, p.err, what, last, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("HEAD /v1/images/%s: no %s within %v; last: %s", digest, what, appWithin, last)
		}
		time.Sleep(headPoll)
	}
}

// unpackStarting is the console line the node would print as it starts
// to unpack an upload, followed by the digest. It does not print one
// yet; when it does, waitUnpackStart returns as soon as it appears.
const unpackStarting = `msg="unpacking image" digest=`

// unpackLead is how long after the last byte of an upload reached the
// node waitUnpackStart waits at most for unpackStarting.
const unpackLead = time.Second

// waitUnpackStart returns once the node is unpacking the upload of
// digest, total bytes, for a reset to land there: all its bytes are on
// the node, the image is not there yet, and cloud start still waits for
// the node's answer. The node syncs the upload, checks its digest and
// starts the unpack helper within milliseconds of taking the last byte,
// and the unpack takes seconds: without unpackStarting on the console,
// a pause of unpackLead after the last byte stands for it.
func (n *appNode) waitUnpackStart(tb testing.TB, p *push, digest string, total int64) {
	tb.Helper()
	n.waitUpload(tb, p, digest, "all bytes on the node, the image not yet unpacked", func(have bool, off int64) (bool, error) {
		if have {
			return false, fmt.Errorf("the image was unpacked before the reset: make manyFiles (%d) larger", manyFiles)
		}
		return off == total, nil
	})
	deadline := time.Now().Add(unpackLead)
	for !strings.Contains(readFile(n.v.serial), unpackStarting+digest) && time.Now().Before(deadline) {
		time.Sleep(pollEvery)
	}
	if have, _ := n.imageState(tb, digest); have {
		tb.Fatalf("the image %s was unpacked before the reset: make manyFiles (%d) larger", digest, manyFiles)
	}
	select {
	case <-p.done:
		tb.Fatalf("cloud start %s exited (%v) before the reset; it printed:\n%s", p.file, p.err, p.out.String())
	default:
	}
}

// settledOffset HEADs the upload of digest until two answers in a row,
// appPoll apart, agree, and returns that offset: after its client died,
// the node has taken what was in flight and synced it.
func (n *appNode) settledOffset(tb testing.TB, digest string) int64 {
	tb.Helper()
	deadline := time.Now().Add(appWithin)
	prev := int64(-1)
	for {
		have, off := n.imageState(tb, digest)
		if have {
			tb.Fatalf("HEAD /v1/images/%s: the image is on the node, want an interrupted upload", digest)
		}
		if off == prev {
			return off
		}
		if time.Now().After(deadline) {
			tb.Fatalf("HEAD /v1/images/%s: the offset still moves (%d) %v after the client died", digest, off, appWithin)
		}
		prev = off
		time.Sleep(appPoll)
	}
}
