package imagestore

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"allium/internal/child"
	"allium/internal/testkit"

	"allium/manifest"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the unpack helper (and as a probe of the
// confinement) when these are set, as `init` does for "unpack".
const (
	helperEnv = "ALLIUM_IMAGESTORE_HELPER"
	probeEnv  = "ALLIUM_IMAGESTORE_PROBE"
)

func TestMain(m *testing.M) {
	switch {
	case os.Getenv(helperEnv) == "1" && len(os.Args) > 2 && os.Args[1] == "unpack":
		os.Exit(HelperMain(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	case os.Getenv(probeEnv) != "":
		os.Exit(probeConfinement(os.Getenv(probeEnv)))
	}
	os.Exit(m.Run())
}

func exitStatus(code int) unix.WaitStatus { return unix.WaitStatus(code << 8) }

// TestHelperMainInProcess runs the helper's side unconfined, in this
// process, and reads its output as PID 1 would.
func TestHelperMainInProcess(t *testing.T) {
	good := image(t, goodTree()...)
	sb := newSandbox(t)
	var out, errOut bytes.Buffer
	args := append([]string{"-confine=false"}, helperArgs(testLimits(), sb.dst)...)
	code := HelperMain(args, bytes.NewReader(good), &out, &errOut)
	m, err := ParseHelperResult(out.Bytes(), exitStatus(code))
	want := &manifest.Manifest{Version: 1, Name: "app", Command: []string{"/bin/app", "-v"}}
	if code != 0 || err != nil || !reflect.DeepEqual(m, want) {
		t.Fatalf("HelperMain = %d (%s, %s), ParseHelperResult = %+v, %v; want 0, %+v", code, &out, &errOut, m, err, want)
	}
	checkGoodTree(t, sb.dst, testManifest)

	for _, h := range hostiles[:8] {
		sb := newSandbox(t)
		out.Reset()
		args := append([]string{"-confine=false"}, helperArgs(h.limits(), sb.dst)...)
		code := HelperMain(args, bytes.NewReader(h.build(t)), &out, &errOut)
		_, err := ParseHelperResult(out.Bytes(), exitStatus(code))
		if code != 1 {
			t.Errorf("HelperMain(%s) = %d, want 1", h.name, code)
		}
		checkHostileError(t, "ParseHelperResult("+h.name+")", err, h)
		sb.check(t)
	}
}

func TestHelperMainUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"-max-bytes=x", "/d"}, {"a", "b"}, {"-bogus", "/d"}} {
		var out, errOut bytes.Buffer
		if code := HelperMain(args, strings.NewReader(""), &out, &errOut); code != 2 || out.Len() != 0 {
			t.Errorf("HelperMain(%q) = %d, stdout %q; want 2 and nothing", args, code, &out)
		}
	}
}

func TestParseHelperResult(t *testing.T) {
	for _, tc := range []struct {
		out     string
		ws      unix.WaitStatus
		want    string
		invalid bool
	}{
		{`{"error":"imagestore: entry \"x\": bad","invalid":true}`, exitStatus(1), `imagestore: entry "x": bad`, true},
		{`{"error":"imagestore: write x: no space left on device"}`, exitStatus(1), "no space left on device", false},
		// The helper's death read "killed by killed" (issue 10): the
		// signal's name, not its description.
		{``, unix.WaitStatus(syscall.SIGKILL), "the unpack helper was killed by SIGKILL", false},
		{`{"manifest":`, exitStatus(2), "exited with status 2 and no result", false},
		{`{}`, exitStatus(0), "exited with status 0 and no manifest", false},
		{`{"manifest":{"version":1}}`, exitStatus(0), "the unpack helper's result: manifest.json: name", false},
		{`{"manifest":{"version":1,"name":"a","command":["/x"]}}`, exitStatus(3), "exited with status 3 and no manifest", false},
	} {
		m, err := ParseHelperResult([]byte(tc.out), tc.ws)
		if m != nil || err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, ErrInvalid) != tc.invalid {
			t.Errorf("ParseHelperResult(%q, %v) = %v, %v; want an error with %q, ErrInvalid %v", tc.out, tc.ws, m, err, tc.want, tc.invalid)
		}
	}
}

func TestHelperCommand(t *testing.T) {
	dir := t.TempDir()
	archive := filepath.Join(dir, "a.tar")
	os.WriteFile(archive, []byte("x"), 0o600)
	lim := Limits{MaxBytes: 10, MaxEntries: 20, MaxRatio: 30, AllowDevices: true, AllowSetuid: true}
	cmd, stdout, err := HelperCommand("/proc/self/exe", lim, archive, "/data/staging/x")
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	defer closeChildFiles(cmd)
	want := []string{"init", "unpack", "-max-bytes=10", "-max-entries=20", "-max-ratio=30", "-allow-devices", "-allow-setuid", "--", "/data/staging/x"}
	if cmd.Path != "/proc/self/exe" || !reflect.DeepEqual(cmd.Args, want) {
		t.Errorf("HelperCommand = %s %q, want /proc/self/exe %q", cmd.Path, cmd.Args, want)
	}
	if cmd.Env == nil || len(cmd.Env) != 0 {
		t.Errorf("HelperCommand env = %#v, want empty (not inherited)", cmd.Env)
	}
	_, inFile := cmd.Stdin.(*os.File)
	_, outFile := cmd.Stdout.(*os.File)
	if !inFile || !outFile {
		t.Errorf("HelperCommand stdin, stdout = %T, %T; want *os.File (no copying goroutines in PID 1)", cmd.Stdin, cmd.Stdout)
	}
	if want := (&syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}); !reflect.DeepEqual(cmd.SysProcAttr, want) {
		t.Errorf("HelperCommand SysProcAttr = %+v, want %+v", cmd.SysProcAttr, want)
	}
	if _, _, err := HelperCommand("/x", lim, filepath.Join(dir, "missing"), dir); err == nil {
		t.Errorf("HelperCommand of a missing archive = nil error")
	}
}

// helperForTest re-executes this test binary as the helper.
func helperForTest() Helper {
	return Helper{Exe: os.Args[0], Starter: child.StarterFunc(func(cmd *exec.Cmd) (<-chan unix.WaitStatus, error) {
		cmd.Env = append(cmd.Env, helperEnv+"=1")
		return testkit.Starter.Start(cmd)
	})}
}

// TestHelperRoot runs the real helper, chrooted and confined, through a
// Store: owners, setuid files and device nodes as allowed, and a hostile
// archive's error back through ParseHelperResult.
func TestHelperRoot(t *testing.T) {
	testkit.NeedRoot(t)
	s := openStore(t, helperForTest())
	s.Limits = func(int64) Limits { l := testLimits(); l.AllowDevices, l.AllowSetuid = true, true; return l }
	su := fileEnt("rootfs/bin/su", "#!", 0o4755)
	su.h.Uid, su.h.Gid = 0, 0
	a := compress(t, compressions[2].c, tarOf(t, append([]ent{manifestEnt(devManifest), dirEnt("rootfs/", 0o755)},
		append(goodTree(), su, nodeEnt("rootfs/dev/null", tar.TypeChar, 1, 3))...)...))
	d := digestOf(a)
	if _, err := s.Write(context.Background(), d, 0, int64(len(a)), bytes.NewReader(a)); err != nil {
		t.Fatalf("Write through the helper = %v", err)
	}
	r := s.RootFS(d)
	checkGoodTree(t, filepath.Dir(r), devManifest)
	if fi, err := os.Stat(filepath.Join(r, "bin/su")); err != nil || fi.Mode() != os.ModeSetuid|0o755 {
		t.Errorf("bin/su mode = %v, %v; want setuid 0755", modeOf(fi), err)
	}
	fi, err := os.Lstat(filepath.Join(r, "dev/null"))
	if st, ok := sysStat(fi); err != nil || !ok || fi.Mode()&os.ModeCharDevice == 0 || st.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("dev/null = %v, %v; want the character device 1:3", modeOf(fi), err)
	}

	for _, h := range []hostile{hostiles[0], hostiles[4], hostiles[8]} {
		a := compress(t, compressions[3].c, h.build(t))
		_, err := s.Write(context.Background(), digestOf(a), 0, int64(len(a)), bytes.NewReader(a))
		checkHostileError(t, "Write("+h.name+") through the helper", err, h)
	}
	if entries, _ := os.ReadDir(s.path(stagingDir)); len(entries) != 0 {
		t.Errorf("staging holds %v after refused uploads", entries)
	}
}

func sysStat(fi os.FileInfo) (*syscall.Stat_t, bool) {
	if fi == nil {
		return nil, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return st, ok
}

// probe is what probeConfinement reports of itself once confined.
type probe struct {
	Err         string
	Cwd         string
	NoNewPrivs  int
	Bounding    uint64
	Tid         int            // the thread that confined itself
	Effective   map[int]uint64 // per thread
	Permitted   map[int]uint64
	AllThreads  bool // syscall.AllThreadsSyscall works (not a cgo binary)
	FSize, File uint64
}

// probeConfinement confines this process as the helper does, then
// reports every thread's capabilities (threads listed before the
// chroot hides /proc).
func probeConfinement(dir string) int {
	runtime.LockOSThread() // as HelperMain does
	tids, _ := os.ReadDir("/proc/self/task")
	p := probe{Tid: unix.Gettid(), Effective: map[int]uint64{}, Permitted: map[int]uint64{}}
	_, _, errno := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_GET_NO_NEW_PRIVS, 0, 0)
	p.AllThreads = errno != syscall.ENOTSUP
	if _, err := confineHelper(dir, Limits{MaxBytes: 5 << 20}); err != nil {
		p.Err = err.Error()
	}
	p.Cwd, _ = os.Getwd()
	nnp, _ := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	p.NoNewPrivs = nnp
	for c := range 64 {
		if on, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); err == nil && on == 1 {
			p.Bounding |= 1 << c
		}
	}
	for _, tid := range tids {
		var pid int
		fmt.Sscan(tid.Name(), &pid)
		var data [2]unix.CapUserData
		if unix.Capget(&unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3, Pid: int32(pid)}, &data[0]) == nil {
			p.Effective[pid] = uint64(data[0].Effective) | uint64(data[1].Effective)<<32
			p.Permitted[pid] = uint64(data[0].Permitted) | uint64(data[1].Permitted)<<32
		}
	}
	var rl unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_FSIZE, &rl)
	p.FSize = rl.Max
	unix.Getrlimit(unix.RLIMIT_NOFILE, &rl)
	p.File = rl.Max
	json.NewEncoder(os.Stdout).Encode(p)
	return 0
}

// TestConfinementRoot checks what confineHelper leaves the helper: in a
// chroot, no_new_privs, and only the kept capabilities on every thread
// (in a cgo test binary, on the confining thread only: build with
// CGO_ENABLED=0, as `make test` and init do, to check them all).
func TestConfinementRoot(t *testing.T) {
	testkit.NeedRoot(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "inside"), nil, 0o644)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), probeEnv+"="+dir)
	out, err := cmd.Output()
	var p probe
	if err != nil || json.Unmarshal(out, &p) != nil {
		t.Fatalf("probe = %s, %v", out, err)
	}
	var want uint64
	for _, c := range keptCaps {
		want |= 1 << c
	}
	if p.Err != "" || p.Cwd != "/" || p.NoNewPrivs != 1 || p.Bounding != want {
		t.Errorf("confined: err %q, cwd %q, no_new_privs %d, bounding %#x; want no error, /, 1, %#x", p.Err, p.Cwd, p.NoNewPrivs, p.Bounding, want)
	}
	if _, ok := p.Effective[p.Tid]; len(p.Effective) < 2 || !ok {
		t.Errorf("probed threads %v, want the runtime's several, %d among them", p.Effective, p.Tid)
	}
	if !p.AllThreads {
		t.Logf("a cgo test binary: only thread %d is confined", p.Tid)
	}
	for tid := range p.Effective {
		if (p.AllThreads || tid == p.Tid) && (p.Effective[tid] != want || p.Permitted[tid] != want) {
			t.Errorf("thread %d: effective %#x, permitted %#x; want %#x", tid, p.Effective[tid], p.Permitted[tid], want)
		}
	}
	if p.FSize != 5<<20 || p.File != helperNoFile {
		t.Errorf("rlimits: fsize %d, nofile %d; want %d, %d", p.FSize, p.File, 5<<20, helperNoFile)
	}
}

// A Helper without a Starter refuses to start the helper: there is no
// fallback to cmd.Wait, which in PID 1 would be a second waiter.
func TestHelperNeedsAStarter(t *testing.T) {
	archive := filepath.Join(t.TempDir(), "a.tar")
	os.WriteFile(archive, nil, 0o644)
	_, err := Helper{Exe: "/bin/true"}.Unpack(context.Background(), archive, t.TempDir(), DefaultLimits(1<<30))
	if !errors.Is(err, child.ErrNoStarter) {
		t.Errorf("Helper{}.Unpack = %v, want child.ErrNoStarter", err)
	}
}
