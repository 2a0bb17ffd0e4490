package supervisor

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
)

const testPasswd = `root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App,,,:/home/app:/bin/sh
broken line
bad:x:notanumber:1::/:/bin/sh
nohome:x:1001:1001:::/bin/sh
`

const testGroup = `root:x:0:
daemon:x:1:
app:x:1000:
web:x:2000:app,daemon
logs:x:2001:daemon,app
bad:x:zz:app
`

func TestParsePasswd(t *testing.T) {
	got := parsePasswd([]byte(testPasswd))
	want := []passwdEntry{
		{"root", 0, 0, "/root"},
		{"daemon", 1, 1, "/usr/sbin"},
		{"app", 1000, 1000, "/home/app"},
		{"nohome", 1001, 1001, ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parsePasswd() = %+v, want %+v", got, want)
	}
}

func TestParseGroup(t *testing.T) {
	got := parseGroup([]byte(testGroup))
	want := []groupEntry{
		{"root", 0, nil},
		{"daemon", 1, nil},
		{"app", 1000, nil},
		{"web", 2000, []string{"app", "daemon"}},
		{"logs", 2001, []string{"daemon", "app"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseGroup() = %+v, want %+v", got, want)
	}
}

func TestResolveUser(t *testing.T) {
	pw, gr := parsePasswd([]byte(testPasswd)), parseGroup([]byte(testGroup))
	tests := []struct {
		user string
		want User
	}{
		{"", User{UID: 0, GID: 0, Home: "/root"}},
		{"root", User{UID: 0, GID: 0, Home: "/root"}},
		{"app", User{UID: 1000, GID: 1000, Groups: []uint32{2000, 2001}, Home: "/home/app"}},
		{"1000", User{UID: 1000, GID: 1000, Groups: []uint32{2000, 2001}, Home: "/home/app"}},
		{"1000:5", User{UID: 1000, GID: 5, Groups: []uint32{2000, 2001}, Home: "/home/app"}},
		{"4242", User{UID: 4242, GID: 4242, Home: "/"}},
		{"4242:7", User{UID: 4242, GID: 7, Home: "/"}},
		{"nohome", User{UID: 1001, GID: 1001, Home: "/"}},
		{"daemon", User{UID: 1, GID: 1, Groups: []uint32{2000, 2001}, Home: "/usr/sbin"}},
	}
	for _, tt := range tests {
		got, err := resolveUser(tt.user, pw, gr)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("resolveUser(%q) = %+v, %v; want %+v", tt.user, got, err, tt.want)
		}
	}
	for _, bad := range []string{"nobody", "app:x"} {
		if got, err := resolveUser(bad, pw, gr); err == nil {
			t.Errorf("resolveUser(%q) = %+v, want an error", bad, got)
		}
	}
	if _, err := resolveUser("nobody", pw, gr); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("resolveUser(nobody) error = %v, want ErrUnknownUser", err)
	}
}

func writeFile(t *testing.T, name, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLookupUser(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "etc/passwd"), testPasswd)
	writeFile(t, filepath.Join(root, "etc/group"), testGroup)
	got, err := LookupUser(root, "app")
	want := User{UID: 1000, GID: 1000, Groups: []uint32{2000, 2001}, Home: "/home/app"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("LookupUser(app) = %+v, %v; want %+v", got, err, want)
	}
	_, err = LookupUser(root, "nobody")
	if !errors.Is(err, ErrUnknownUser) {
		t.Errorf("LookupUser(nobody) error = %v, want ErrUnknownUser", err)
	}
}

// An image without /etc/passwd still runs numeric users; a name is a
// clear error.
func TestLookupUserNoPasswd(t *testing.T) {
	root := t.TempDir()
	if got, err := LookupUser(root, "33:44"); err != nil || got.UID != 33 || got.GID != 44 || got.Home != "/" {
		t.Errorf("LookupUser(33:44) = %+v, %v; want 33:44 with home /", got, err)
	}
	if _, err := LookupUser(root, "app"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("LookupUser(app) without /etc/passwd: error %v, want ErrUnknownUser", err)
	}
}

// A workload can replace its /etc/passwd with a symlink to the node's
// files; PID 1 must not follow it out of the root.
func TestLookupUserSymlinkEscape(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret")
	writeFile(t, outside, "evil:x:0:0::/:/bin/sh\n")
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	if err := os.Symlink(outside, filepath.Join(root, "etc/passwd")); err != nil {
		t.Fatal(err)
	}
	if u, err := LookupUser(root, "evil"); err == nil {
		t.Errorf("LookupUser through a symlink out of the root = %+v, want an error", u)
	}
}

// A FIFO at /etc/passwd must not hang PID 1.
func TestLookupUserFIFO(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	if err := syscall.Mkfifo(filepath.Join(root, "etc/passwd"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	if u, err := LookupUser(root, "app"); err == nil {
		t.Errorf("LookupUser with a FIFO passwd = %+v, want an error", u)
	}
}

// No workload runs as PID 1's real uid or gid: it could signal PID 1
// (issue 10).
func TestResolveUserRefusesInitUID(t *testing.T) {
	pw := parsePasswd([]byte("sneaky:x:1048575:0::/:/bin/sh\n"))
	for _, user := range []string{"1048575", "0:1048575", "sneaky"} {
		if u, err := resolveUser(user, pw, nil); err == nil {
			t.Errorf("resolveUser(%q) = %+v, want an error naming uid %d", user, u, InitUID)
		}
	}
	if InitUID != 1048575 {
		t.Errorf("InitUID = %d; the test's passwd names 1048575", InitUID)
	}
}
