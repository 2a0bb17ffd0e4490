package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"allium/api"
)

// keysNode is a fleet's node that also keeps client keys: the fleet's
// own key as "admin", and whatever cloud keys adds. Its rules are the
// node's, in short: a name is taken once, and the last admin stays.
type keysNode struct {
	*fakeBackend
	mu   sync.Mutex
	keys []api.ClientKey
}

func (b *keysNode) Authorize(pub ed25519.PublicKey) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := slices.IndexFunc(b.keys, func(k api.ClientKey) bool { return k.Key.Equal(pub) })
	if i < 0 {
		return "", false
	}
	return b.keys[i].Role, true
}

func (b *keysNode) Keys(context.Context) ([]api.ClientKey, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.keys), nil
}

func (b *keysNode) AddKey(_ context.Context, k api.ClientKey) (api.ClientKey, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, old := range b.keys {
		switch {
		case old.Name == k.Name && old.Key.Equal(k.Key) && old.Role == k.Role:
			return old, false, nil
		case old.Name == k.Name || old.Key.Equal(k.Key):
			return api.ClientKey{}, false, api.Conflict("%s clashes with the key %s", k.Name, old.Name)
		}
	}
	b.keys = append(b.keys, k)
	return k, true, nil
}

func (b *keysNode) RemoveKey(_ context.Context, id string) (api.ClientKey, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := slices.IndexFunc(b.keys, func(k api.ClientKey) bool { return k.Matches(id) })
	if i < 0 {
		return api.ClientKey{}, api.NotFound("no key %q", id)
	}
	gone := b.keys[i]
	if gone.IsAdmin() && !slices.ContainsFunc(b.keys, func(k api.ClientKey) bool { return k.IsAdmin() && k.Name != gone.Name }) {
		return api.ClientKey{}, api.LastAdmin("%q is the last admin key", id)
	}
	b.keys = slices.Delete(b.keys, i, i+1)
	return gone, nil
}

// newKeysFleet is a fleet whose node web1 keeps keys.
func newKeysFleet(t *testing.T) (*fleet, *keysNode) {
	t.Helper()
	f := newFleet(t)
	b := &keysNode{fakeBackend: f.backend}
	b.keys = []api.ClientKey{{AuthorizedKey: api.AuthorizedKey{Key: f.backend.authorized, Name: "admin"}, Role: api.RoleAdmin}}
	f.addr, f.nodeKey = serve(t, b)
	f.alias(t, "web1", f.addr, f.nodeKey)
	return f, b
}

// keyLine runs cloud keys me in a fresh config dir and returns the line.
func keyLine(t *testing.T, name string) (dir, line string) {
	t.Helper()
	dir = t.TempDir()
	code, out, errOut := runCloud(t, "--config", dir, "keys", "me", "--name", name)
	if code != exitOK || !strings.Contains(errOut, "cloud keys HOST add "+name) {
		t.Fatalf("cloud keys me: exit %d, stderr %q, want 0 and how to add it", code, errOut)
	}
	return dir, strings.TrimSpace(out)
}

func TestKeysMe(t *testing.T) {
	dir, line := keyLine(t, "alice@laptop")
	keys, err := api.ParseAuthorizedKeys(strings.NewReader(line))
	if err != nil || len(keys) != 1 || keys[0].Name != "alice@laptop" || keys[0].Onion == nil {
		t.Fatalf("cloud keys me printed %q = %+v, %v, want one line with both keys", line, keys, err)
	}
	cfg := api.Config{Dir: dir}
	key, err := cfg.ClientKey()
	if err != nil || !key.Public().(ed25519.PublicKey).Equal(keys[0].Key) {
		t.Errorf("the printed TLS key is not the public half of %s (%v)", cfg.KeyPath(), err)
	}
	if _, err := os.Stat(cfg.OnionKeyPath()); err != nil {
		t.Errorf("cloud keys me made no %s: %v", cfg.OnionKeyPath(), err)
	}
	// The keys are made once: the same line again.
	code, again, _ := runCloud(t, "--config", dir, "keys", "me", "--name", "alice@laptop")
	if code != exitOK || strings.TrimSpace(again) != line {
		t.Errorf("cloud keys me again = %q, want %q", again, line)
	}
	if code, _, _ := runCloud(t, "--config", dir, "keys", "me", "--name", "alice laptop"); code != exitUsage {
		t.Errorf("cloud keys me --name 'alice laptop': exit %d, want 2", code)
	}
}

func TestKeysAddListRemove(t *testing.T) {
	f, node := newKeysFleet(t)
	bobDir, line := keyLine(t, "bob@desk")
	code, out, _ := f.cloud(t, "keys", "web1", "add", "bob", line)
	if code != exitOK || !strings.Contains(out, "web1 now authorizes bob as admin") {
		t.Fatalf("cloud keys web1 add bob LINE: exit %d, %q", code, out)
	}
	stored, _ := node.Keys(t.Context())
	if len(stored) != 2 || stored[1].Name != "bob" || stored[1].Onion == nil || stored[1].Role != api.RoleAdmin {
		t.Fatalf("the node holds %+v, want bob with his onion key, as admin", stored)
	}
	// The same add again (a retry) changes nothing and says so; the
	// line pasted as separate words is the same line.
	code, out, _ = f.cloud(t, append([]string{"keys", "web1", "add", "bob"}, strings.Fields(line)...)...)
	if code != exitOK || !strings.Contains(out, "already authorizes bob") {
		t.Errorf("cloud keys web1 add bob again: exit %d, %q, want no change", code, out)
	}
	// bob's own config reaches the node now.
	f2 := &fleet{dir: bobDir}
	f2.alias(t, "web1", f.addr, f.nodeKey)
	if code, _, _ := f2.cloud(t, "info", "web1"); code != exitOK {
		t.Errorf("cloud info web1 with bob's key: exit %d, want 0", code)
	}
	code, out, _ = f.cloud(t, "keys", "web1", "list")
	fp := api.Fingerprint(stored[1].Key)
	if code != exitOK {
		t.Fatalf("cloud keys web1 list: exit %d", code)
	}
	wantContains(t, "cloud keys web1 list", out, "NAME", "admin *", "bob ", fp, "yes")
	code, out, _ = f.cloud(t, "keys", "web1", "rm", fp)
	if code != exitOK || !strings.Contains(out, "web1 no longer authorizes bob") {
		t.Errorf("cloud keys web1 rm FINGERPRINT: exit %d, %q", code, out)
	}
	code, _, errOut := f2.cloud(t, "info", "web1")
	if code != exitFailure || !strings.Contains(errOut, "not authorized") {
		t.Errorf("cloud info web1 with bob's removed key: exit %d, %q, want 1 and not authorized", code, errOut)
	}
}

func TestKeysLastAdminAndViewer(t *testing.T) {
	f, _ := newKeysFleet(t)
	code, _, errOut := f.cloud(t, "keys", "web1", "rm", "admin")
	if code != exitFailure || !strings.Contains(errOut, "last admin") {
		t.Errorf("cloud keys web1 rm admin: exit %d, %q, want 1 and the last admin", code, errOut)
	}
	ciDir, line := keyLine(t, "ci")
	fields := strings.Fields(line)
	code, out, _ := f.cloud(t, "keys", "web1", "add", "ci", "--key", fields[0], "--role", "viewer")
	if code != exitOK || !strings.Contains(out, "as viewer") {
		t.Fatalf("cloud keys web1 add ci --key --role viewer: exit %d, %q", code, out)
	}
	ci := &fleet{dir: ciDir}
	ci.alias(t, "web1", f.addr, f.nodeKey)
	code, out, _ = ci.cloud(t, "keys", "web1", "list", "--json")
	var list []api.KeyInfo
	if err := json.Unmarshal([]byte(out), &list); code != exitOK || err != nil || len(list) != 2 || !list[1].You || list[1].Role != api.RoleViewer {
		t.Errorf("cloud keys web1 list --json as ci: exit %d, %q (%v), want both keys, ci marked you", code, out, err)
	}
	code, _, errOut = ci.cloud(t, "keys", "web1", "rm", "admin")
	if code != exitFailure || !strings.Contains(errOut, "viewer") || !strings.Contains(errOut, "forbidden") {
		t.Errorf("cloud keys web1 rm admin as a viewer: exit %d, %q, want 1 naming the role", code, errOut)
	}
}

func TestKeysUsage(t *testing.T) {
	f, node := newKeysFleet(t)
	good := api.FormatKey(node.authorized)
	for _, args := range [][]string{
		{"keys"},
		{"keys", "web1"},
		{"keys", "web1", "frob"},
		{"keys", "web1", "list", "extra"},
		{"keys", "web1", "list", "--role", "viewer"},
		{"keys", "web1", "rm"},
		{"keys", "web1", "add"},
		{"keys", "web1", "add", "bob"},
		{"keys", "web1", "add", "bob", "ssh-ed25519 AAAA bob"},
		{"keys", "web1", "add", "bob", "--key", "ed25519:AAAA"},
		{"keys", "web1", "add", "bob", "--key", good, "--role", "root"},
		{"keys", "web1", "add", "bob", "--key", good, "--onion-key", "x25519:AB"},
		{"keys", "web1", "add", "bob", good, "--key", good},
		{"keys", "web1", "add", "my bob", good},
	} {
		if code, _, _ := f.cloud(t, args...); code != exitUsage {
			t.Errorf("cloud %s: exit %d, want 2", strings.Join(args, " "), code)
		}
	}
	if keys, _ := node.Keys(t.Context()); len(keys) != 1 {
		t.Errorf("bad command lines changed the keys: %+v", keys)
	}
}
