package supervisor

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"allium/manifest"
	"allium/supervisor/idmap"
	"allium/supervisor/isolation"
	"allium/supervisor/restart"

	"golang.org/x/sys/unix"
)

func testSpec() Spec {
	return Spec{
		Name: "web", Root: "/containers/web", Command: []string{"httpd", "-f"},
		Env: []string{"HOME=/", "PATH=/bin"}, Workdir: "/srv", UID: 1000, GID: 1000, Groups: []uint32{2000},
		Rlimits: map[string]uint64{"nofile": 100}, LogDir: "/var/lib/allium/logs/web",
	}
}

// Command is pure: what it builds is compared field by field, as u-root's
// proc_linux_test.go does.
func TestCommand(t *testing.T) {
	out, _ := os.Open(os.DevNull)
	defer out.Close()
	cmd := Command("/proc/self/exe", testSpec(), out, out)
	if cmd.Path != "/proc/self/exe" {
		t.Errorf("Command().Path = %q, want /proc/self/exe", cmd.Path)
	}
	if want := []string{"init", "shim"}; !reflect.DeepEqual(cmd.Args, want) {
		t.Errorf("Command().Args = %q, want %q", cmd.Args, want)
	}
	if want := (&syscall.SysProcAttr{Setsid: true}); !reflect.DeepEqual(cmd.SysProcAttr, want) {
		t.Errorf("Command().SysProcAttr = %+v, want %+v", cmd.SysProcAttr, want)
	}
	if cmd.Stdout != out || cmd.Stderr != out || cmd.Stdin != nil || cmd.Dir != "" || cmd.ExtraFiles != nil {
		t.Errorf("Command() stdio = %v %v %v, dir %q, extra %v; want the given files, no stdin, no dir", cmd.Stdin, cmd.Stdout, cmd.Stderr, cmd.Dir, cmd.ExtraFiles)
	}
	if len(cmd.Env) != 1 || !strings.HasPrefix(cmd.Env[0], ShimSpecEnv+"=") {
		t.Fatalf("Command().Env = %q, want only %s", cmd.Env, ShimSpecEnv)
	}
	var got shimConfig
	if err := json.Unmarshal([]byte(strings.TrimPrefix(cmd.Env[0], ShimSpecEnv+"=")), &got); err != nil {
		t.Fatal(err)
	}
	want := shimConfig{
		Root: "/containers/web", Command: []string{"httpd", "-f"}, Env: []string{"HOME=/", "PATH=/bin"},
		Workdir: "/srv", UID: 1000, GID: 1000, Groups: []uint32{2000}, Rlimits: map[string]uint64{"nofile": 100},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("shim config = %+v, want %+v", got, want)
	}
}

// Each rung starts the shim in a new session; from the namespaces rung
// up, in new mount, pid, uts and ipc namespaces (not net: host
// networking), with the hostname and readiness descriptor in its config;
// from the userns rung up, also in a user namespace mapping the spec's
// ids, as the namespace's root.
func TestCommandRungs(t *testing.T) {
	ns := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	ids := idmap.Range{Base: idmap.First + idmap.Size, Size: idmap.Size}
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: idmap.First + idmap.Size, Size: idmap.Size}}
	userns := &syscall.SysProcAttr{Setsid: true, Cloneflags: ns | unix.CLONE_NEWUSER, UidMappings: m, GidMappings: m,
		GidMappingsEnableSetgroups: true, Credential: &syscall.Credential{}}
	tests := []struct {
		rung    isolation.Rung
		want    *syscall.SysProcAttr
		wantCfg string
	}{
		{isolation.Chroot, &syscall.SysProcAttr{Setsid: true}, ""},
		{isolation.Namespaces, &syscall.SysProcAttr{Setsid: true, Cloneflags: ns}, `"rung":"namespaces","hostname":"web","ready_fd":5`},
		{isolation.Userns, userns, `"rung":"namespaces","hostname":"web","ready_fd":5`},
		{isolation.Cgroups, userns, `"rung":"namespaces","hostname":"web","ready_fd":5`},
	}
	for _, tt := range tests {
		s := testSpec()
		s.Rung, s.ReadyFD, s.IDs = tt.rung, 5, ids
		cmd := Command("/x", s, nil, nil)
		want := tt.want
		if !reflect.DeepEqual(cmd.SysProcAttr, want) {
			t.Errorf("Command(rung %v).SysProcAttr = %+v, want %+v", tt.rung, cmd.SysProcAttr, want)
		}
		if got := cmd.Env[0]; tt.wantCfg == "" && strings.Contains(got, `"rung"`) || !strings.Contains(got, tt.wantCfg) {
			t.Errorf("Command(rung %v) env = %s, want %s in it", tt.rung, got, tt.wantCfg)
		}
	}
}

// A nil file must stay a nil io.Writer, or os/exec would use a nil
// *os.File.
func TestCommandNilStdio(t *testing.T) {
	s := testSpec()
	s.Workdir = ""
	cmd := Command("/x", s, nil, nil)
	if cmd.Stdout != nil || cmd.Stderr != nil {
		t.Errorf("Command(nil files) stdio = %v, %v; want nil interfaces", cmd.Stdout, cmd.Stderr)
	}
	if !strings.Contains(cmd.Env[0], `"workdir":"/"`) {
		t.Errorf("Command() with no workdir: env %q, want workdir /", cmd.Env[0])
	}
}

func TestWithStatus(t *testing.T) {
	st, rd, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	defer rd.Close()
	tests := []struct {
		readyFD   int
		ready     *os.File
		wantExtra []*os.File
		wantFD    string
	}{
		{0, nil, []*os.File{st}, "3"},
		{3, rd, []*os.File{rd, st}, "4"},
		{4, rd, []*os.File{st, rd}, "3"},
		{6, rd, []*os.File{st, nil, nil, rd}, "3"},
	}
	for _, tt := range tests {
		cmd := Command("/x", testSpec(), nil, nil)
		withStatus(cmd, st, tt.readyFD, tt.ready)
		if !reflect.DeepEqual(cmd.ExtraFiles, tt.wantExtra) {
			t.Errorf("withStatus(ready fd %d).ExtraFiles = %v, want %v", tt.readyFD, cmd.ExtraFiles, tt.wantExtra)
		}
		if got := cmd.Env[len(cmd.Env)-1]; got != ShimStatusEnv+"="+tt.wantFD {
			t.Errorf("withStatus(ready fd %d) env = %q, want %s=%s", tt.readyFD, got, ShimStatusEnv, tt.wantFD)
		}
	}
}

func TestValidate(t *testing.T) {
	bad := map[string]func(*Spec){
		"no name":       func(s *Spec) { s.Name = "" },
		"relative root": func(s *Spec) { s.Root = "containers/web" },
		"no command":    func(s *Spec) { s.Command = nil },
		"empty argv0":   func(s *Spec) { s.Command = []string{""} },
		"ready fd 2":    func(s *Spec) { s.ReadyFD = 2 },
		"bad rlimit":    func(s *Spec) { s.Rlimits = map[string]uint64{"files": 1} },
		"huge env":      func(s *Spec) { s.Env = []string{"X=" + strings.Repeat("x", 200<<10)} },
		"bad rung":      func(s *Spec) { s.Rung = isolation.Cgroups + 1 },
	}
	for name, f := range bad {
		s := testSpec()
		f(&s)
		if err := s.Validate(); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("Validate(%s) = %v, want ErrInvalidSpec", name, err)
		}
	}
	s := testSpec()
	if err := s.Validate(); err != nil {
		t.Errorf("Validate(good) = %v", err)
	}
}

func TestEnviron(t *testing.T) {
	u := User{Home: "/home/app"}
	got := Environ(map[string]string{"B": "2", "A": "1"}, u)
	want := []string{"A=1", "B=2", "HOME=/home/app", "PATH=" + DefaultPath}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Environ() = %q, want %q", got, want)
	}
	got = Environ(map[string]string{"PATH": "/x", "HOME": "/y"}, u)
	want = []string{"HOME=/y", "PATH=/x"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Environ(PATH, HOME set) = %q, want %q", got, want)
	}
}

func TestFromManifest(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "etc/passwd"), testPasswd)
	writeFile(t, filepath.Join(root, "etc/group"), testGroup)
	m := &manifest.Manifest{
		Version: 1, Name: "web", Command: []string{"/bin/httpd", "-f"}, Env: map[string]string{"A": "1"},
		Workdir: "/srv", User: "app",
		Restart:   manifest.Restart{Policy: "on-failure", Delay: manifest.Duration{D: 2 * time.Second}},
		Stop:      manifest.Stop{Signal: "sigquit", Timeout: manifest.Duration{D: 3 * time.Second}},
		Resources: manifest.Resources{Rlimits: map[string]uint64{"nofile": 64}},
		Ready:     &manifest.Ready{TCP: 8080, Timeout: manifest.Duration{D: 9 * time.Second}},
	}
	got, err := FromManifest(m, "web1", root, "/logs/web1", isolation.Chroot, idmap.Range{})
	if err != nil {
		t.Fatal(err)
	}
	want := Spec{
		Name: "web1", Root: root, Command: []string{"/bin/httpd", "-f"},
		Env:     []string{"A=1", "HOME=/home/app", "PATH=" + DefaultPath},
		Workdir: "/srv", UID: 1000, GID: 1000, Groups: []uint32{2000, 2001},
		Rlimits: map[string]uint64{"nofile": 64}, StopSignal: unix.SIGQUIT, StopTimeout: 3 * time.Second,
		LogDir: "/logs/web1", Policy: restart.Policy{Mode: "on-failure", Delay: 2 * time.Second},
		Ready: TCPProbe{Addr: "127.0.0.1:8080"}, ReadyTimeout: 9 * time.Second,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FromManifest() =\n%+v\nwant\n%+v", got, want)
	}

	m.Ready = &manifest.Ready{FD: 3}
	if got, err := FromManifest(m, "web1", root, "", isolation.Chroot, idmap.Range{}); err != nil || got.ReadyFD != 3 || got.Ready != nil {
		t.Errorf("FromManifest(ready fd 3) = ready %v fd %d, %v; want fd 3", got.Ready, got.ReadyFD, err)
	}
	m.User = "nobody"
	if _, err := FromManifest(m, "web1", root, "", isolation.Chroot, idmap.Range{}); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("FromManifest(user nobody) error = %v, want ErrUnknownUser", err)
	}
	m.User, m.Isolation.Minimum = "", "namespaces"
	if _, err := FromManifest(m, "web1", root, "", isolation.Chroot, idmap.Range{}); !errors.Is(err, ErrIsolation) {
		t.Errorf("FromManifest(minimum namespaces, at chroot) error = %v, want ErrIsolation", err)
	}
	if got, err := FromManifest(m, "web1", root, "", isolation.Namespaces, idmap.Range{}); err != nil || got.Rung != isolation.Namespaces {
		t.Errorf("FromManifest(minimum namespaces, at namespaces) = rung %v, %v; want namespaces", got.Rung, err)
	}
	ids := idmap.Range{Base: idmap.First, Size: idmap.Size}
	if got, err := FromManifest(m, "web1", root, "", isolation.Cgroups, ids); err != nil || got.Rung != MaxRung || got.IDs != ids {
		t.Errorf("FromManifest(at cgroups) = rung %v ids %v, %v; want MaxRung %v, ids %v", got.Rung, got.IDs, err, MaxRung, ids)
	}
	if _, err := FromManifest(m, "web1", root, "", isolation.Userns, idmap.Range{}); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("FromManifest(at userns, no ids) error = %v, want ErrInvalidSpec", err)
	}
}
