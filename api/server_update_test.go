package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeInits is an in-memory Updater: the partial uploads of inits, and
// the one it staged.
type fakeInits struct {
	initMu   sync.Mutex
	parts    map[string][]byte
	staged   *InitInfo
	putInit  []int64 // the offset of each PutInit call
	refuse   string  // when set, a complete init is refused with it
	switched string  // the digest SwitchInit was asked for
}

func (f *fakeInits) Init(_ context.Context, d string) (InitInfo, error) {
	f.initMu.Lock()
	defer f.initMu.Unlock()
	if f.staged == nil || f.staged.Digest != d {
		return InitInfo{}, NotFound("no init %s staged", d)
	}
	return *f.staged, nil
}

func (f *fakeInits) InitOffset(_ context.Context, d string) (int64, error) {
	f.initMu.Lock()
	defer f.initMu.Unlock()
	return int64(len(f.parts[d])), nil
}

func (f *fakeInits) PutInit(_ context.Context, d string, offset, total int64, body io.Reader) (InitInfo, error) {
	f.initMu.Lock()
	defer f.initMu.Unlock()
	f.putInit = append(f.putInit, offset)
	if f.parts == nil {
		f.parts = map[string][]byte{}
	}
	if have := int64(len(f.parts[d])); have != offset {
		return InitInfo{}, OffsetMismatch(d, have)
	}
	b, err := io.ReadAll(body)
	f.parts[d] = append(f.parts[d], b...)
	if err != nil {
		return InitInfo{}, err
	}
	all := f.parts[d]
	if int64(len(all)) < total {
		return InitInfo{}, io.ErrUnexpectedEOF
	}
	delete(f.parts, d)
	switch {
	case digestOf(all) != d:
		return InitInfo{}, BadRequest("digest mismatch: got %s", digestOf(all))
	case f.refuse != "":
		return InitInfo{}, BadRequest("%s", f.refuse)
	}
	f.staged = &InitInfo{Digest: d, Size: total, InitVersion: InitVersion{Version: "v-new", StateSchema: 2, Arch: "amd64", Handover: 1}}
	return *f.staged, nil
}

// TestInitUploadResumes: an init sent in two parts is kept, resumed
// from where the node says, and staged; HEAD then says the node has it.
func TestInitUploadResumes(t *testing.T) {
	n := startNode(t)
	data := archive(1000)
	d := digestOf(data)
	path := "/v1/node/init/" + d
	resp, body := n.send(t, n.request(t, http.MethodPut, path, data[:300], HeaderUploadOffset, "0", HeaderUploadLength, "1000"))
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get(HeaderUploadOffset) != "300" {
		t.Fatalf("PUT of 300 of 1000 bytes: %d %s, want 202 and offset 300", resp.StatusCode, body)
	}
	c := n.dial(t, n.client)
	if have, off, err := c.InitState(t.Context(), d); have || off != 300 || err != nil {
		t.Errorf("InitState(partly sent) = %v, %d, %v; want false, 300, nil", have, off, err)
	}
	in, err := c.UploadInit(t.Context(), d, bytes.NewReader(data), 1000, UploadOptions{})
	if err != nil || in.Digest != d || in.Version != "v-new" || in.Size != 1000 {
		t.Fatalf("UploadInit(the rest) = %+v, %v; want the staged init", in, err)
	}
	if got := n.backend.putInit; !slices.Equal(got, []int64{0, 300}) {
		t.Errorf("PutInit offsets = %v, want [0 300]: the client resumed from the node's offset", got)
	}
	if have, off, err := c.InitState(t.Context(), d); !have || off != 1000 || err != nil {
		t.Errorf("InitState(staged) = %v, %d, %v; want true, 1000, nil", have, off, err)
	}
	// Once staged, another UploadInit sends nothing.
	if _, err := c.UploadInit(t.Context(), d, bytes.NewReader(data), 1000, UploadOptions{}); err != nil || len(n.backend.putInit) != 2 {
		t.Errorf("UploadInit(staged) = %v after %d PutInit calls, want nil and no new call", err, len(n.backend.putInit))
	}
}

func TestInitUploadRefused(t *testing.T) {
	n := startNode(t)
	c := n.dial(t, n.client)
	data := archive(100)
	// A digest that is not the file's.
	_, err := c.UploadInit(t.Context(), zeroDigest, bytes.NewReader(data), 100, UploadOptions{})
	e := wantStatus(t, "UploadInit(wrong digest)", err, http.StatusBadRequest, CodeBadRequest)
	if !strings.Contains(e.Message, "digest mismatch") {
		t.Errorf("UploadInit(wrong digest) = %q, want it to say the digest", e.Message)
	}
	// An init the node's check refuses: its reason comes back whole.
	n.backend.refuse = "init: not a static ELF: it asks for the loader /lib64/ld-linux-x86-64.so.2"
	_, err = c.UploadInit(t.Context(), digestOf(data), bytes.NewReader(data), 100, UploadOptions{})
	e = wantStatus(t, "UploadInit(refused)", err, http.StatusBadRequest, CodeBadRequest)
	if e.Message != n.backend.refuse {
		t.Errorf("UploadInit(refused) = %q, want %q", e.Message, n.backend.refuse)
	}
	if n.backend.staged != nil {
		t.Errorf("a refused init was staged: %+v", n.backend.staged)
	}
}

// TestInitTooLarge: an init over MaxInitSize is refused before its body
// is sent, and the backend is not asked.
func TestInitTooLarge(t *testing.T) {
	n := startNode(t)
	req := n.request(t, http.MethodPut, "/v1/node/init/"+zeroDigest, []byte("x"),
		HeaderUploadOffset, "0", HeaderUploadLength, strconv.Itoa(MaxInitSize+1), "Expect", "100-continue")
	resp, body := n.send(t, req)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(message(body), strconv.Itoa(MaxInitSize)) {
		t.Errorf("PUT of an init of %d bytes: %d %s, want 413 naming the cap", MaxInitSize+1, resp.StatusCode, body)
	}
	wantJSONError(t, "PUT of a too large init", body, CodeTooLarge)
	if len(n.backend.putInit) != 0 {
		t.Errorf("PutInit was called %d times for a too large init, want 0", len(n.backend.putInit))
	}
}

func TestInitUploadNeedsAdmin(t *testing.T) {
	n := startNode(t)
	viewer := newKey(t)
	n.backend.viewer = pub(viewer)
	c := n.dial(t, viewer)
	data := archive(100)
	_, err := c.UploadInit(t.Context(), digestOf(data), bytes.NewReader(data), 100, UploadOptions{})
	wantStatus(t, "UploadInit() as a viewer", err, http.StatusForbidden, CodeForbidden)
	if len(n.backend.putInit) != 0 {
		t.Errorf("a viewer reached PutInit %d times, want 0", len(n.backend.putInit))
	}
}

func TestNodeUpdateOnTheWire(t *testing.T) {
	n := startNode(t)
	n.backend.node.Update = &Update{StateSchema: 2, Handover: 1, Staged: &InitInfo{Digest: zeroDigest, Size: 5, InitVersion: InitVersion{Version: "v2"}}}
	_, _, body := n.raw(t, http.MethodGet, "/v1/node")
	var got struct {
		Update struct {
			StateSchema int `json:"state_schema"`
			Staged      struct {
				Version string `json:"version"`
			} `json:"staged"`
		} `json:"update"`
	}
	if err := json.Unmarshal(body, &got); err != nil || got.Update.StateSchema != 2 || got.Update.Staged.Version != "v2" {
		t.Errorf("GET /v1/node = %s, want update with state_schema 2 and the staged init", body)
	}
}

func (f *fakeInits) SwitchInit(_ context.Context, d string) (string, error) {
	f.initMu.Lock()
	defer f.initMu.Unlock()
	if f.staged == nil || f.staged.Digest != d {
		return "", Conflict("no init %s staged", d)
	}
	f.switched = d
	return "switching", nil
}

func TestSwitchInit(t *testing.T) {
	n := startNode(t)
	c := n.dial(t, n.client)
	_, err := c.SwitchInit(t.Context(), zeroDigest)
	wantStatus(t, "SwitchInit(nothing staged)", err, http.StatusConflict, CodeConflict)
	n.backend.staged = &InitInfo{Digest: zeroDigest, Size: 5}
	a, err := c.SwitchInit(t.Context(), zeroDigest)
	if err != nil || a.Status != "switching" || n.backend.switched != zeroDigest {
		t.Errorf("SwitchInit(staged) = %+v, %v (switched %q); want 202 switching", a, err, n.backend.switched)
	}
	viewer := newKey(t)
	n.backend.viewer = pub(viewer)
	_, err = n.dial(t, viewer).SwitchInit(t.Context(), zeroDigest)
	wantStatus(t, "SwitchInit() as a viewer", err, http.StatusForbidden, CodeForbidden)
	_, _, body := n.raw(t, http.MethodPost, "/v1/node/update")
	wantJSONError(t, "POST /v1/node/update without a body", body, CodeBadRequest)
}
