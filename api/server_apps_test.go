package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

const zeroDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

func TestUnimplementedAppsAnswer501(t *testing.T) {
	n := startNode(t) // its fakeBackend embeds UnimplementedApps
	status, _, body := n.raw(t, http.MethodGet, "/v1/containers")
	if status != http.StatusNotImplemented {
		t.Errorf("GET /v1/containers on a node without apps: status %d, want 501", status)
	}
	wantJSONError(t, "GET /v1/containers without apps", body, CodeNotImplemented)
	_, _, err := n.dial(t, n.client).ImageState(t.Context(), zeroDigest)
	wantStatus(t, "ImageState() without apps", err, http.StatusNotImplemented, CodeNotImplemented)
}

func TestImagesEmptyListIsArray(t *testing.T) {
	n, _ := startApps(t)
	for _, path := range []string{"/v1/images", "/v1/containers"} {
		status, header, body := n.raw(t, http.MethodGet, path)
		if status != http.StatusOK || strings.TrimSpace(string(body)) != "[]" || header.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s on an empty node: %d %q %s, want 200 application/json []", path, status, header.Get("Content-Type"), body)
		}
	}
}

func TestBadDigestAndName(t *testing.T) {
	n, apps := startApps(t)
	tests := []struct{ method, path, field string }{
		{http.MethodGet, "/v1/images/sha256:xyz", `digest "sha256:xyz"`},
		{http.MethodDelete, "/v1/images/md5:00", `digest "md5:00"`},
		{http.MethodPut, "/v1/images/sha256:ABC", `digest "sha256:ABC"`},
		{http.MethodGet, "/v1/containers/Foo", `container name "Foo"`},
		{http.MethodPost, "/v1/containers/-x/stop", `container name "-x"`},
		{http.MethodGet, "/v1/containers/a%20b/logs", `container name "a b"`},
	}
	for _, tt := range tests {
		resp, body := n.send(t, n.request(t, tt.method, tt.path, nil))
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(message(body), tt.field) {
			t.Errorf("%s %s: %d %s, want 400 naming %s", tt.method, tt.path, resp.StatusCode, body, tt.field)
		}
		wantJSONError(t, tt.method+" "+tt.path, body, CodeBadRequest)
	}
	if len(apps.puts) != 0 {
		t.Errorf("a bad request reached PutImage")
	}
}

func TestHeadImage(t *testing.T) {
	n, apps := startApps(t)
	c := n.dial(t, n.client)
	have, off, err := c.ImageState(t.Context(), zeroDigest)
	if err != nil || have || off != 0 {
		t.Errorf("ImageState(absent) = %v, %d, %v; want false, 0, nil", have, off, err)
	}
	apps.uploads[zeroDigest] = make([]byte, 1234)
	if have, off, err = c.ImageState(t.Context(), zeroDigest); have || off != 1234 || err != nil {
		t.Errorf("ImageState(partly uploaded) = %v, %d, %v; want false, 1234, nil", have, off, err)
	}
	apps.images[zeroDigest] = Image{Digest: zeroDigest, Size: 99}
	if have, _, err = c.ImageState(t.Context(), zeroDigest); !have || err != nil {
		t.Errorf("ImageState(present) = %v, %v; want true, nil", have, err)
	}
}

func TestUploadHeaders(t *testing.T) {
	n, apps := startApps(t)
	path := "/v1/images/" + zeroDigest
	tests := []struct {
		header []string
		want   string
	}{
		{[]string{HeaderUploadLength, "10"}, "Upload-Offset: missing"},
		{[]string{HeaderUploadOffset, "0"}, "Upload-Length: missing"},
		{[]string{HeaderUploadOffset, "x", HeaderUploadLength, "10"}, `Upload-Offset "x": want a byte count`},
		{[]string{HeaderUploadOffset, "-1", HeaderUploadLength, "10"}, `Upload-Offset "-1"`},
		{[]string{HeaderUploadOffset, "11", HeaderUploadLength, "10"}, "Upload-Offset 11 is past Upload-Length 10"},
		{[]string{HeaderUploadOffset, "0", HeaderUploadLength, "0"}, "Upload-Length: 0"},
		{[]string{HeaderUploadOffset, "8", HeaderUploadLength, "10"}, "Content-Length 5 is more than the 2 bytes"},
	}
	for _, tt := range tests {
		resp, body := n.send(t, n.request(t, http.MethodPut, path, []byte("12345"), tt.header...))
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(message(body), tt.want) {
			t.Errorf("PUT %s with %q: %d %s, want 400 saying %q", path, tt.header, resp.StatusCode, body, tt.want)
		}
	}
	if len(apps.puts) != 0 {
		t.Errorf("PutImage was called %d times for bad headers, want 0", len(apps.puts))
	}
}

func TestUploadOffsetMismatch(t *testing.T) {
	n, apps := startApps(t)
	apps.uploads[zeroDigest] = []byte("abc")
	req := n.request(t, http.MethodPut, "/v1/images/"+zeroDigest, []byte("xyz"),
		HeaderUploadOffset, "0", HeaderUploadLength, "10")
	resp, body := n.send(t, req)
	if resp.StatusCode != http.StatusConflict || resp.Header.Get(HeaderUploadOffset) != "3" {
		t.Fatalf("PUT at 0 when the node has 3: %d, Upload-Offset %q; want 409 and 3", resp.StatusCode, resp.Header.Get(HeaderUploadOffset))
	}
	var got struct {
		Error
		UploadState
	}
	if err := json.Unmarshal(body, &got); err != nil || got.Code != CodeUploadOffset || got.Offset != 3 || got.Digest != zeroDigest {
		t.Errorf("409 body = %s, want an error with code %q, digest and offset 3", body, CodeUploadOffset)
	}
	if string(apps.uploads[zeroDigest]) != "abc" {
		t.Errorf("a mismatched PUT changed the upload to %q", apps.uploads[zeroDigest])
	}
}

func TestContainerEndpoints(t *testing.T) {
	n, apps := startApps(t)
	c := n.dial(t, n.client)
	ctx := t.Context()
	apps.images[zeroDigest] = Image{Digest: zeroDigest, Name: "app"}
	ct, err := c.PutContainer(ctx, "foo", ContainerRequest{Image: zeroDigest})
	if err != nil || ct.Name != "foo" || ct.State != StateRunning || ct.ImageName != "app" {
		t.Fatalf("PutContainer(foo) = %+v, %v; want foo running app", ct, err)
	}
	for _, step := range []struct {
		do    func(context.Context, string) (Container, error)
		state string
	}{{c.StopContainer, StateStopped}, {c.StartContainer, StateRunning}, {c.RestartContainer, StateRunning}, {c.Container, StateRunning}} {
		if ct, err := step.do(ctx, "foo"); err != nil || ct.State != step.state {
			t.Errorf("container action = %+v, %v; want state %s", ct, err, step.state)
		}
	}
	if _, err := c.SignalContainer(ctx, "foo", "HUP"); err != nil || len(apps.signals) != 1 || apps.signals[0] != "foo HUP" {
		t.Errorf("SignalContainer(foo, HUP) = %v; the node got %q", err, apps.signals)
	}
	if _, err := c.SignalContainer(ctx, "foo", ""); err != nil || len(apps.signals) != 2 || apps.signals[1] != "foo " {
		t.Errorf("SignalContainer(foo, \"\") = %v; the node got %q", err, apps.signals)
	}
	if cs, err := c.Containers(ctx); err != nil || len(cs) != 1 || cs[0].Name != "foo" {
		t.Errorf("Containers() = %+v, %v; want [foo]", cs, err)
	}
	if err := c.RemoveContainer(ctx, "foo"); err != nil {
		t.Errorf("RemoveContainer(foo) = %v", err)
	}
	_, err = c.Container(ctx, "foo")
	wantStatus(t, "Container(foo) after rm", err, http.StatusNotFound, CodeNotFound)
	_, err = c.StopContainer(ctx, "nosuch")
	wantStatus(t, "StopContainer(nosuch)", err, http.StatusNotFound, CodeNotFound)
}

func TestImageEndpoints(t *testing.T) {
	n, apps := startApps(t)
	c := n.dial(t, n.client)
	apps.images[zeroDigest] = Image{Digest: zeroDigest, Name: "app", Size: 7}
	if img, err := c.Image(t.Context(), zeroDigest); err != nil || img.Size != 7 {
		t.Errorf("Image() = %+v, %v; want size 7", img, err)
	}
	if imgs, err := c.Images(t.Context()); err != nil || len(imgs) != 1 {
		t.Errorf("Images() = %+v, %v; want one", imgs, err)
	}
	if err := c.RemoveImage(t.Context(), zeroDigest); err != nil {
		t.Errorf("RemoveImage() = %v", err)
	}
	err := c.RemoveImage(t.Context(), zeroDigest)
	wantStatus(t, "RemoveImage() again", err, http.StatusNotFound, CodeNotFound)
}

func TestPutContainerBody(t *testing.T) {
	n, apps := startApps(t)
	apps.images[zeroDigest] = Image{Digest: zeroDigest}
	other := strings.Replace(zeroDigest, "0", "1", 1)
	tests := []struct {
		body   string
		status int
		want   string
	}{
		{"", 400, "request body: empty"},
		{"{", 400, "request body: unexpected EOF"},
		{`{"image": 5}`, 400, "request body: json: cannot unmarshal number"},
		{`{"image": "` + zeroDigest + `", "imgae": 1}`, 400, `unknown field "imgae"`},
		{`{"image": "` + zeroDigest + `"} {}`, 400, "more than one JSON value"},
		{`{}`, 400, `image "": want sha256:`},
		{`{"image": "latest"}`, 400, `image "latest"`},
		{`{"image": "` + other + `"}`, 404, "is not on the node"},
		{`{"image": "` + strings.Repeat(" ", maxRequest) + `"}`, 413, "more than 65536 bytes"},
		{`{"image": "` + zeroDigest + `"}`, 200, `"state": "running"`},
	}
	for _, tt := range tests {
		resp, body := n.send(t, n.request(t, http.MethodPut, "/v1/containers/foo", []byte(tt.body)))
		if resp.StatusCode != tt.status || !strings.Contains(message(body)+string(body), tt.want) {
			t.Errorf("PUT /v1/containers/foo %.40q: %d %s, want %d saying %q", tt.body, resp.StatusCode, body, tt.status, tt.want)
		}
	}
}

func TestErrorStatuses(t *testing.T) {
	n, apps := startApps(t)
	c := n.dial(t, n.client)
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{Conflict("image is used by foo"), 409, CodeConflict},
		{fmt.Errorf("wrapped: %w", TooLarge("over the cap")), 413, CodeTooLarge},
		{Unavailable("shutting down"), 503, CodeUnavailable},
		{BadRequest("bad"), 400, CodeBadRequest},
		{NotImplemented("later"), 501, CodeNotImplemented},
		{errors.New("disk on fire"), 500, CodeInternal},
	}
	for _, tt := range tests {
		apps.fail = tt.err
		err := c.RemoveImage(t.Context(), zeroDigest)
		e := wantStatus(t, fmt.Sprintf("RemoveImage() failing with %v", tt.err), err, tt.status, tt.code)
		if !strings.Contains(tt.err.Error(), e.Message) {
			t.Errorf("RemoveImage() failing with %v: message %q, want the backend's", tt.err, e.Message)
		}
	}
}

func TestQueryValidation(t *testing.T) {
	n, apps := startApps(t)
	apps.logs["foo"] = nil
	for path, want := range map[string]string{
		"/v1/containers/foo/logs?tail=-1":   `tail "-1"`,
		"/v1/containers/foo/logs?tail=some": `tail "some"`,
		"/v1/containers/foo/logs?follow=2":  `follow "2"`,
		"/v1/events?follow=yes":             `follow "yes"`,
	} {
		status, _, body := n.raw(t, http.MethodGet, path)
		if status != http.StatusBadRequest || !strings.Contains(message(body), want) {
			t.Errorf("GET %s: %d %s, want 400 naming %s", path, status, body, want)
		}
	}
}

func TestAppsWrongMethod(t *testing.T) {
	n, _ := startApps(t)
	tests := []struct{ method, path, allow string }{
		{http.MethodPost, "/v1/images", "GET, HEAD"},
		{http.MethodPost, "/v1/images/" + zeroDigest, "GET, HEAD, PUT, DELETE"},
		{http.MethodGet, "/v1/containers/foo/stop", "POST"},
		{http.MethodPost, "/v1/events", "GET, HEAD"},
	}
	for _, tt := range tests {
		status, header, _ := n.raw(t, tt.method, tt.path)
		if status != http.StatusMethodNotAllowed || header.Get("Allow") != tt.allow {
			t.Errorf("%s %s: %d, Allow %q; want 405 and %q", tt.method, tt.path, status, header.Get("Allow"), tt.allow)
		}
	}
}

func TestLogs(t *testing.T) {
	n, apps := startApps(t)
	apps.logs["foo"] = []string{"t1 stdout one", "t2 stderr two", "t3 stdout three"}
	status, header, body := n.raw(t, http.MethodGet, "/v1/containers/foo/logs?tail=2")
	if status != 200 || header.Get("Content-Type") != "text/plain; charset=utf-8" || string(body) != "t2 stderr two\nt3 stdout three\n" {
		t.Errorf("GET logs?tail=2: %d %q %q, want 200 text/plain and the last two lines", status, header.Get("Content-Type"), body)
	}
	var got []string
	err := n.dial(t, n.client).Logs(t.Context(), "foo", LogOptions{Tail: -1}, func(l string) error { got = append(got, l); return nil })
	if err != nil || strings.Join(got, "|") != strings.Join(apps.logs["foo"], "|") {
		t.Errorf("Logs(all) = %q, %v; want every line", got, err)
	}
	err = n.dial(t, n.client).Logs(t.Context(), "bar", LogOptions{Tail: -1, Follow: true}, func(string) error { return nil })
	wantStatus(t, "Logs(unknown, follow)", err, http.StatusNotFound, CodeNotFound)
}

// TestLogsFollow: a followed stream delivers new lines as they come,
// and the node stops following when the client goes away.
func TestLogsFollow(t *testing.T) {
	n, apps := startApps(t)
	apps.logs["foo"] = []string{"old"}
	apps.containers["foo"] = Container{Name: "foo"}
	ctx, cancel := context.WithCancel(t.Context())
	lines := make(chan string)
	done := make(chan error, 1)
	go func() {
		done <- n.dial(t, n.client).Logs(ctx, "foo", LogOptions{Tail: 1, Follow: true}, func(l string) error {
			lines <- l
			return nil
		})
	}()
	wantLine(t, lines, "old")
	apps.newLines <- "new 1"
	wantLine(t, lines, "new 1")
	apps.newLines <- "new 2"
	wantLine(t, lines, "new 2")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Logs() after cancel = %v, want context.Canceled", err)
	}
	waitFollowerGone(t, apps)
}

// message is the text of a JSON error body.
func message(body []byte) string {
	var e Error
	json.Unmarshal(body, &e)
	return e.Message
}

func wantLine[T comparable](t *testing.T, ch <-chan T, want T) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("streamed %v, want %v", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("nothing streamed within 10s, want %v", want)
	}
}

func waitFollowerGone(t *testing.T, apps *fakeApps) {
	t.Helper()
	select {
	case <-apps.followers:
	case <-time.After(10 * time.Second):
		t.Fatal("the node kept following after the client went away")
	}
}

func TestEvents(t *testing.T) {
	n, apps := startApps(t)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	apps.events = []Event{{Time: t0, Type: EventStart, Container: "foo", Message: "started"}}
	status, header, body := n.raw(t, http.MethodGet, "/v1/events")
	if status != 200 || header.Get("Content-Type") != "application/x-ndjson" || strings.Count(string(body), "\n") != 1 {
		t.Errorf("GET /v1/events: %d %q %q, want 200 application/x-ndjson, one line", status, header.Get("Content-Type"), body)
	}
	ctx, cancel := context.WithCancel(t.Context())
	events := make(chan string)
	done := make(chan error, 1)
	go func() {
		done <- n.dial(t, n.client).Events(ctx, true, func(e Event) error { events <- e.Type + " " + e.Container; return nil })
	}()
	wantLine(t, events, "start foo")
	apps.newEvents <- Event{Time: t0, Type: EventExit, Container: "foo", Exit: &Exit{Code: 1}}
	wantLine(t, events, "exit foo")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Events() after cancel = %v, want context.Canceled", err)
	}
	waitFollowerGone(t, apps)
}

// FuzzContainerRequest feeds PUT /v1/containers/{name} arbitrary bodies
// and names: the server answers JSON with an honest status and never
// panics (the mux is called without the recover wrapper).
func FuzzContainerRequest(f *testing.F) {
	f.Add("foo", `{"image": "`+zeroDigest+`"}`)
	f.Add("foo", `{"image": "sha256:`+strings.Repeat("f", 64)+`"}`)
	f.Add("Foo", `{}`)
	f.Add("a", `{"image": null}`)
	f.Add("b", `[1, 2]`)
	f.Add("c", `{"image": "x", "image": "y"}`)
	f.Add("d", "\x00\xff{")
	apps := newFakeApps()
	apps.images[zeroDigest] = Image{Digest: zeroDigest}
	srv, err := NewServer(appsBackend{&fakeBackend{}, apps}, newFuzzKey(f), testLoggerTB(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name, body string) {
		req := httptest.NewRequest(http.MethodPut, "/v1/containers/x", strings.NewReader(body))
		req.SetPathValue("name", name)
		rec := httptest.NewRecorder()
		srv.putContainer(rec, req)
		switch rec.Code {
		case 200, 400, 404, 413:
		default:
			t.Fatalf("PUT %q %q: status %d, want 200, 400, 404 or 413", name, body, rec.Code)
		}
		var v map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("PUT %q %q: answer %q is not JSON", name, body, rec.Body)
		}
	})
}

// TestUploadInPieces: a body shorter than the rest of the archive is
// kept, and the answer says where to go on.
func TestUploadInPieces(t *testing.T) {
	n, apps := startApps(t)
	data := archive(10)
	d := digestOf(data)
	path := "/v1/images/" + d
	resp, body := n.send(t, n.request(t, http.MethodPut, path, data[:4], HeaderUploadOffset, "0", HeaderUploadLength, "10"))
	var st UploadState
	if json.Unmarshal(body, &st); resp.StatusCode != http.StatusAccepted || st.Offset != 4 || resp.Header.Get(HeaderUploadOffset) != "4" {
		t.Fatalf("PUT of 4 of 10 bytes: %d %s, want 202 and offset 4", resp.StatusCode, body)
	}
	resp, body = n.send(t, n.request(t, http.MethodPut, path, data[4:], HeaderUploadOffset, "4", HeaderUploadLength, "10"))
	var img Image
	if json.Unmarshal(body, &img); resp.StatusCode != http.StatusCreated || img.Digest != d {
		t.Errorf("PUT of the other 6 bytes: %d %s, want 201 and the image", resp.StatusCode, body)
	}
	if !slices.Equal(apps.puts, []int64{0, 4}) {
		t.Errorf("PutImage offsets = %v, want [0 4]", apps.puts)
	}
}
