package idmap

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"allium/internal/testkit"

	"golang.org/x/sys/unix"
)

// A tree made by host root moves to a range and back; a file owned
// outside the range it moves from stays as it is; setuid bits survive.
func TestRootShiftAndOwn(t *testing.T) {
	testkit.NeedRoot(t)
	dir := t.TempDir()
	for _, d := range []string{"a", "a/b"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	write := func(name string, uid int, mode os.FileMode) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Lchown(p, uid, uid)
		os.Chmod(p, mode)
	}
	write("a/root", 0, 0o644)
	write("a/b/app", 1000, 0o644)
	write("a/suid", 0, 0o755|os.ModeSetuid)
	write("a/far", 200000, 0o644) // neither the host's 16-bit ids nor a range
	os.Symlink("/etc/passwd", filepath.Join(dir, "a/link"))
	r := Range{Base: First + 2*Size, Size: Size}
	if err := Own(dir, r); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint32{".": r.Base, "a/root": r.Base, "a/b/app": r.Base + 1000, "a/suid": r.Base, "a/far": 200000, "a/link": r.Base}
	check := func(when string, want map[string]uint32) {
		t.Helper()
		for name, uid := range want {
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(dir, name), &st); err != nil || st.Uid != uid || st.Gid != uid {
				t.Errorf("%s: %s owned by %d:%d (%v), want %d", when, name, st.Uid, st.Gid, err, uid)
			}
		}
	}
	check("shifted", want)
	if st, _ := os.Stat(filepath.Join(dir, "a/suid")); st.Mode()&os.ModeSetuid == 0 {
		t.Errorf("a/suid lost its setuid bit: %v", st.Mode())
	}
	if st, _ := os.Lstat("/etc/passwd"); st.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("the symlink's target was shifted")
	}
	if err := Own(dir, Range{}); err != nil {
		t.Fatal(err)
	}
	check("back", map[string]uint32{".": 0, "a/root": 0, "a/b/app": 1000, "a/far": 200000})
}

// Bind shows a tree owned by host ids owned by the range, without
// changing it, where the kernel and filesystem have idmapped mounts.
func TestRootBind(t *testing.T) {
	testkit.NeedRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chown(filepath.Join(src, "f"), 1000, 1000)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r := Range{Base: First + 5*Size, Size: Size}
	if err := (Mapper{Starter: testkit.Starter, Exe: exe}).Bind(src, dst, r); err != nil {
		t.Skipf("no idmapped mounts here: %v", err)
	}
	defer unix.Unmount(dst, unix.MNT_DETACH)
	for path, want := range map[string]uint32{filepath.Join(dst, "f"): r.Base + 1000, dst: r.Base, filepath.Join(src, "f"): 1000} {
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil || st.Uid != want {
			t.Errorf("%s: uid %d (%v), want %d", path, st.Uid, err, want)
		}
	}
	if err := os.WriteFile(filepath.Join(dst, "g"), nil, 0o644); err == nil {
		t.Errorf("the idmapped bind is writable; want read-only")
	}
}

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "userns" && os.Getenv(HoldEnv) == "1" {
		os.Exit(HoldMain(os.Stdin))
	}
	os.Exit(m.Run())
}
