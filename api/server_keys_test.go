package api

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeKeys is an in-memory key store with the node's rules: one entry
// per key, name and onion key; the last admin stays.
type fakeKeys struct {
	mu   sync.Mutex
	keys []ClientKey
}

func (f *fakeKeys) Authorize(pub ed25519.PublicKey) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range f.keys {
		if k.Key.Equal(pub) {
			return k.Role, true
		}
	}
	return "", false
}

func (f *fakeKeys) Keys(context.Context) ([]ClientKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ClientKey(nil), f.keys...), nil
}

func (f *fakeKeys) AddKey(_ context.Context, k ClientKey) (ClientKey, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, old := range f.keys {
		if old.Key.Equal(k.Key) && old.Name == k.Name && old.Role == k.Role && string(old.Onion) == string(k.Onion) {
			return old, false, nil
		}
		if old.Key.Equal(k.Key) || old.Name == k.Name || k.Onion != nil && string(old.Onion) == string(k.Onion) {
			return ClientKey{}, false, Conflict("key %q clashes with %q", k.Name, old.Name)
		}
	}
	k.Added = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	f.keys = append(f.keys, k)
	return k, true, nil
}

func (f *fakeKeys) RemoveKey(_ context.Context, id string) (ClientKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	admins := 0
	for _, k := range f.keys {
		if k.IsAdmin() {
			admins++
		}
	}
	for i, k := range f.keys {
		if !k.Matches(id) {
			continue
		}
		if k.IsAdmin() && admins == 1 {
			return ClientKey{}, LastAdmin("%s is the last admin key", k.Name)
		}
		f.keys = append(f.keys[:i], f.keys[i+1:]...)
		return k, nil
	}
	return ClientKey{}, NotFound("no key %q", id)
}

// keysBackend is a fakeBackend whose keys are a fakeKeys.
type keysBackend struct {
	*fakeBackend
	*fakeKeys
}

func (b keysBackend) Authorize(pub ed25519.PublicKey) (string, bool) {
	b.auths.Add(1)
	return b.fakeKeys.Authorize(pub)
}

// startKeys serves a fakeKeys on a loopback TLS listener, holding
// n.client as the one admin key.
func startKeys(t *testing.T) (*testNode, *fakeKeys) {
	t.Helper()
	n := &testNode{key: newKey(t), client: newKey(t), backend: &fakeBackend{node: Node{Name: "web1"}}}
	keys := &fakeKeys{keys: []ClientKey{{AuthorizedKey: AuthorizedKey{Key: pub(n.client), Name: "admin"}}}}
	n.serve(t, keysBackend{n.backend, keys})
	return n, keys
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

func onionKey(b byte) string {
	return FormatOnionKey([]byte(strings.Repeat(string(rune(b)), OnionKeySize)))
}

func TestAddListRemoveKey(t *testing.T) {
	n, _ := startKeys(t)
	c := n.dial(t, n.client)
	laptop := newKey(t)
	req := KeyRequest{Name: "laptop", Key: FormatKey(pub(laptop)), OnionKey: onionKey('a')}
	got, created, err := c.AddKey(t.Context(), req)
	want := KeyInfo{Name: "laptop", Key: req.Key, OnionKey: req.OnionKey, Fingerprint: Fingerprint(pub(laptop)), Role: RoleAdmin}
	if err != nil || !created || got.Added.IsZero() {
		t.Fatalf("AddKey(laptop) = %+v, %v, %v, want created", got, created, err)
	}
	want.Added = got.Added
	if got != want {
		t.Errorf("AddKey(laptop) = %+v, want %+v", got, want)
	}
	// A retry of the same request is no change, and says so.
	if again, created, err := c.AddKey(t.Context(), req); err != nil || created || again != want {
		t.Errorf("AddKey(laptop) again = %+v, %v, %v, want %+v, not created", again, created, err, want)
	}
	keys, err := c.Keys(t.Context())
	if err != nil || len(keys) != 2 {
		t.Fatalf("Keys() = %+v, %v, want admin and laptop", keys, err)
	}
	if keys[0].Name != "admin" || !keys[0].You || keys[0].Role != RoleAdmin || keys[0].OnionKey != "" || keys[1] != want {
		t.Errorf("Keys() = %+v, want admin (you, role admin) then %+v", keys, want)
	}
	// The new key works at once.
	if _, err := n.dial(t, laptop).Node(t.Context()); err != nil {
		t.Errorf("Node() with the added key = %v", err)
	}
	gone, err := c.RemoveKey(t.Context(), "laptop")
	if err != nil || gone.Key != want.Key {
		t.Errorf("RemoveKey(laptop) = %+v, %v, want %+v", gone, err, want)
	}
	_, err = c.RemoveKey(t.Context(), "laptop")
	wantStatus(t, "RemoveKey(laptop) twice", err, http.StatusNotFound, CodeNotFound)
}

// TestRemoveKeyByFingerprint uses a fingerprint holding a '/', which
// must reach the server as one path value.
func TestRemoveKeyByFingerprint(t *testing.T) {
	n, _ := startKeys(t)
	c := n.dial(t, n.client)
	var k ed25519.PrivateKey
	for k = newKey(t); !strings.Contains(Fingerprint(pub(k)), "/"); k = newKey(t) {
	}
	other := newKey(t)
	for _, req := range []KeyRequest{{Name: "ci", Key: FormatKey(pub(k))}, {Name: "desk", Key: FormatKey(pub(other))}} {
		if _, _, err := c.AddKey(t.Context(), req); err != nil {
			t.Fatal(err)
		}
	}
	for id, key := range map[string]ed25519.PrivateKey{Fingerprint(pub(k)): k, FormatKey(pub(other)): other} {
		gone, err := c.RemoveKey(t.Context(), id)
		if err != nil || gone.Key != FormatKey(pub(key)) {
			t.Errorf("RemoveKey(%s) = %+v, %v, want that key", id, gone, err)
		}
	}
}

// TestRemovedKeyIsRefusedOnOpenConnection: the check runs per request,
// so a client whose keep-alive connection is open is refused at once.
func TestRemovedKeyIsRefusedOnOpenConnection(t *testing.T) {
	n, _ := startKeys(t)
	admin := n.dial(t, n.client)
	laptop := newKey(t)
	if _, _, err := admin.AddKey(t.Context(), KeyRequest{Name: "laptop", Key: FormatKey(pub(laptop))}); err != nil {
		t.Fatal(err)
	}
	c := n.dial(t, laptop)
	if _, err := c.Node(t.Context()); err != nil {
		t.Fatalf("Node() with laptop = %v", err)
	}
	if _, err := admin.RemoveKey(t.Context(), "laptop"); err != nil {
		t.Fatal(err)
	}
	_, err := c.Node(t.Context())
	wantStatus(t, "Node() after laptop was removed", err, http.StatusUnauthorized, CodeUnauthorized)
}

func TestLastAdminIsKept(t *testing.T) {
	n, keys := startKeys(t)
	c := n.dial(t, n.client)
	viewer := newKey(t)
	if _, _, err := c.AddKey(t.Context(), KeyRequest{Name: "ci", Key: FormatKey(pub(viewer)), Role: RoleViewer}); err != nil {
		t.Fatal(err)
	}
	_, err := c.RemoveKey(t.Context(), "admin")
	wantStatus(t, "RemoveKey(the only admin)", err, http.StatusConflict, CodeLastAdmin)
	if _, ok := keys.Authorize(pub(n.client)); !ok {
		t.Errorf("the last admin key was removed anyway")
	}
}

func TestAddKeyBadRequests(t *testing.T) {
	n, keys := startKeys(t)
	c := n.dial(t, n.client)
	good := FormatKey(pub(newKey(t)))
	tests := []struct {
		req  KeyRequest
		want string // in the message
	}{
		{KeyRequest{Name: "", Key: good}, "name"},
		{KeyRequest{Name: "my laptop", Key: good}, "name"},
		{KeyRequest{Name: "SHA256:abc", Key: good}, "name"},
		{KeyRequest{Name: "laptop"}, "key: missing"},
		{KeyRequest{Name: "laptop", Key: "ssh-ed25519 AAAA"}, "ed25519:BASE64"},
		{KeyRequest{Name: "laptop", Key: "ed25519:AAAA"}, "bytes"},
		{KeyRequest{Name: "laptop", Key: good, OnionKey: "x25519:ABC"}, "onion key"},
		{KeyRequest{Name: "laptop", Key: good, Role: "root"}, "role \"root\""},
	}
	for _, tt := range tests {
		_, _, err := c.AddKey(t.Context(), tt.req)
		e := wantStatus(t, "AddKey("+tt.req.Name+")", err, http.StatusBadRequest, CodeBadRequest)
		if !strings.Contains(e.Message, tt.want) {
			t.Errorf("AddKey(%+v) = %q, want it to say %q", tt.req, e.Message, tt.want)
		}
	}
	resp, body := n.send(t, n.request(t, http.MethodPost, "/v1/keys", []byte(`{"name": "x", "key": "`+good+`", "admin": true}`)))
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "admin") {
		t.Errorf("POST /v1/keys with an unknown field: %d %s, want 400 naming it", resp.StatusCode, body)
	}
	if len(keys.keys) != 1 {
		t.Errorf("bad requests stored keys: %+v", keys.keys)
	}
}

// Regression: an empty POST /v1/keys was told to send JSON such as
// {"image": "sha256:..."}, the body of another endpoint.
func TestAddKeyEmptyBody(t *testing.T) {
	n, _ := startKeys(t)
	resp, body := n.send(t, n.request(t, http.MethodPost, "/v1/keys", nil))
	if msg := message(body); resp.StatusCode != http.StatusBadRequest || !strings.Contains(msg, `"key": "ed25519:`) || strings.Contains(msg, "image") {
		t.Errorf("POST /v1/keys with no body: %d %q, want 400 showing a key request", resp.StatusCode, msg)
	}
}

func TestAddKeyConflict(t *testing.T) {
	n, _ := startKeys(t)
	c := n.dial(t, n.client)
	// The admin's own key under another name.
	_, _, err := c.AddKey(t.Context(), KeyRequest{Name: "again", Key: FormatKey(pub(n.client))})
	wantStatus(t, "AddKey(the admin key as again)", err, http.StatusConflict, CodeConflict)
	_, _, err = c.AddKey(t.Context(), KeyRequest{Name: "admin", Key: FormatKey(pub(newKey(t)))})
	wantStatus(t, "AddKey(another key as admin)", err, http.StatusConflict, CodeConflict)
}

func TestViewerOnlyReads(t *testing.T) {
	n, keys := startKeys(t)
	viewer := newKey(t)
	keys.keys = append(keys.keys, ClientKey{AuthorizedKey: AuthorizedKey{Key: pub(viewer), Name: "ci"}, Role: RoleViewer})
	c := n.dial(t, viewer)
	if _, err := c.Node(t.Context()); err != nil {
		t.Errorf("Node() as a viewer = %v", err)
	}
	list, err := c.Keys(t.Context())
	if err != nil || len(list) != 2 || !list[1].You || list[0].You {
		t.Errorf("Keys() as a viewer = %+v, %v, want both keys, ci marked you", list, err)
	}
	writes := map[string]func(context.Context) error{
		"Reboot": c.Reboot,
		"AddKey": func(ctx context.Context) error {
			_, _, err := c.AddKey(ctx, KeyRequest{Name: "me2", Key: FormatKey(pub(newKey(t)))})
			return err
		},
		"RemoveKey(admin)": func(ctx context.Context) error { _, err := c.RemoveKey(ctx, "admin"); return err },
		"RemoveContainer":  func(ctx context.Context) error { return c.RemoveContainer(ctx, "web") },
	}
	for name, call := range writes {
		e := wantStatus(t, name+"() as a viewer", call(t.Context()), http.StatusForbidden, CodeForbidden)
		if !strings.Contains(e.Message, "viewer") || !strings.Contains(e.Message, Fingerprint(pub(viewer))) {
			t.Errorf("%s() as a viewer = %q, want it to name the role and the key", name, e.Message)
		}
	}
	if r := n.backend.reboots.Load(); r != 0 || len(keys.keys) != 2 {
		t.Errorf("a viewer changed the node: %d reboots, %d keys", r, len(keys.keys))
	}
	// A role this node does not know may do nothing at all.
	keys.keys[1].Role = "superuser"
	_, err = c.Node(t.Context())
	wantStatus(t, "Node() with an unknown role", err, http.StatusForbidden, CodeForbidden)
}

// FuzzKeyRequest feeds POST /v1/keys arbitrary bodies: the answer is
// JSON with an honest status, and a key that is accepted reads back as
// it was sent.
func FuzzKeyRequest(f *testing.F) {
	good := FormatKey(pub(newFuzzKey(f)))
	f.Add(`{"name": "laptop", "key": "` + good + `"}`)
	f.Add(`{"name": "ci", "key": "` + good + `", "onion_key": "` + onionKey('a') + `", "role": "viewer"}`)
	f.Add(`{"name": "a b", "key": "ed25519:"}`)
	f.Add(`{"name": 1}`)
	f.Add("\x00{")
	srv, err := NewServer(keysBackend{&fakeBackend{}, &fakeKeys{}}, newFuzzKey(f), testLoggerTB(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body string) {
		rec := httptest.NewRecorder()
		srv.addKey(rec, httptest.NewRequest(http.MethodPost, "/v1/keys", strings.NewReader(body)))
		var info KeyInfo
		if err := json.Unmarshal(rec.Body.Bytes(), &info); err != nil {
			t.Fatalf("POST %q: answer %q is not JSON", body, rec.Body)
		}
		switch rec.Code {
		case 200, 201:
			var req KeyRequest
			json.Unmarshal([]byte(body), &req)
			k, err := KeyRequest{Name: info.Name, Key: info.Key, OnionKey: info.OnionKey, Role: info.Role}.Parse()
			if err != nil || k.Name != req.Name || FormatKey(k.Key) != info.Key {
				t.Fatalf("POST %q: stored %+v, which reads back as %+v, %v", body, info, k, err)
			}
		case 400, 409, 413:
		default:
			t.Fatalf("POST %q: status %d, want 200, 201, 400, 409 or 413", body, rec.Code)
		}
	})
}
