package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

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
