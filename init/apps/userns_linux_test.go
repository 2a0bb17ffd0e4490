package apps

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"allium/api"
	"allium/internal/mountinfo"
	"allium/internal/testkit"
	"allium/state"
	"allium/supervisor/cgroup"
	"allium/supervisor/idmap"
	"allium/supervisor/isolation"
)

// realMounter is mount(2) itself, as PID 1's kernel seam.
type realMounter struct{}

func (realMounter) Mount(source, target, fstype string, flags uintptr, data string) error {
	return unix.Mount(source, target, fstype, flags, data)
}
func (realMounter) Unmount(target string, flags int) error { return unix.Unmount(target, flags) }

// busyboxImage is an image of busybox running script, with a volume at
// /data.
func busyboxImage(t *testing.T, script string) (data []byte, digest string) {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("no /bin/busybox (apt-get install busybox-static): %v", err)
	}
	m := fmt.Sprintf(`{"version": 1, "name": "bb", "command": ["/bin/sh", "-c", %q], "volumes": [{"name": "data", "path": "/data"}]}`, script)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h tar.Header, body []byte) {
		h.Size = int64(len(body))
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	add(tar.Header{Name: "manifest.json", Typeflag: tar.TypeReg, Mode: 0o644}, []byte(m))
	for _, d := range []string{"rootfs/", "rootfs/bin/", "rootfs/etc/", "rootfs/tmp/"} {
		add(tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	}
	add(tar.Header{Name: "rootfs/bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755}, bb)
	for _, a := range []string{"sh", "id", "touch", "sleep", "cat", "hostname", "grep"} {
		add(tar.Header{Name: "rootfs/bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}, nil)
	}
	add(tar.Header{Name: "rootfs/etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("root:x:0:0:root:/:/bin/sh\n"))
	add(tar.Header{Name: "rootfs/etc/app.conf", Typeflag: tar.TypeReg, Mode: 0o644, Uid: 1000, Gid: 1000}, []byte("x\n"))
	tw.Close()
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), "sha256:" + hex.EncodeToString(sum[:])
}

// At the userns rung, two containers of one image each get a range of
// their own, recorded; the image is theirs through an idmapped layer
// (or a shifted copy where the kernel has none) and stays the host's on
// disk; what their root writes is owned, seen from the node, by the
// first id of its range, in the writable layer and in the volume.
func TestRootUsernsContainers(t *testing.T) {
	testkit.NeedRoot(t)
	t.Run("idmapped", func(t *testing.T) { usernsContainers(t, idmap.Mapper{Starter: testkit.Starter, Exe: "/proc/self/exe"}) })
	t.Run("shifted copy", func(t *testing.T) { usernsContainers(t, nil) })
}

func usernsContainers(t *testing.T, mapper IDMapper) {
	ctx := context.Background()
	dir := t.TempDir()
	os.Chmod(dir, 0o755) // the containers' roots are below it, and their users walk it
	os.Chmod(filepath.Dir(dir), 0o755)
	log := slog.New(slog.DiscardHandler)
	db, err := state.Open(filepath.Join(dir, "state.db"), log)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	opts := Options{DB: db, Data: filepath.Join(dir, "data"), Starter: testkit.Starter, Mounter: realMounter{}, Log: log,
		IDMapper:  mapper,
		Isolation: func() isolation.Report { return isolation.Report{Highest: isolation.Userns} }}
	svc, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for _, name := range []string{"u1", "u2"} {
			svc.RemoveContainer(ctx, name)
		}
		svc.Stop(ctx, 5*time.Second, ShutdownOperator)
	}()
	data, digest := busyboxImage(t, `touch /made; read a b c < /proc/self/uid_map; echo "$(id -u) $a $b $c" > /data/who; exec sleep 1000`)
	if _, err := svc.PutImage(ctx, digest, 0, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	bases := map[uint32]string{}
	for _, name := range []string{"u1", "u2"} {
		c, err := svc.PutContainer(ctx, name, api.ContainerRequest{Image: digest})
		if err != nil || c.Isolation != "userns" {
			t.Fatalf("PutContainer(%s) = %+v, %v; want isolation userns", name, c, err)
		}
		rec, err := svc.record(name)
		if err != nil || rec.IDSize != idmap.Size || rec.IDBase < idmap.First || bases[rec.IDBase] != "" {
			t.Fatalf("%s's record: ids %d+%d (%v), want a range of its own from %d (taken: %v)", name, rec.IDBase, rec.IDSize, err, idmap.First, bases)
		}
		bases[rec.IDBase] = name
		who := waitFile(t, filepath.Join(dir, "data/volumes", name, "data/who"))
		if want := fmt.Sprintf("0 0 %d 65536", rec.IDBase); who != want {
			t.Errorf("%s: id -u and uid_map = %q, want %q", name, who, want)
		}
		for _, p := range []string{"data/volumes/" + name + "/data/who", "data/containers/" + name + "/made"} {
			if uid := owner(t, filepath.Join(dir, p)); uid != rec.IDBase {
				t.Errorf("%s: %s owned by %d on the node, want %d", name, p, uid, rec.IDBase)
			}
		}
		// This host's kernel has idmapped mounts on ext4 (idmap's root
		// test): with a mapper the image is an idmapped layer, not a copy.
		if lower := filepath.Join(dir, "data/overlay", name, "lower"); (len(mountinfo.Under(lower)) == 1) != (mapper != nil) {
			t.Errorf("%s: mounts at %s: %v; want one with a mapper (an idmapped layer), none without (a shifted copy)", name, lower, mountinfo.Under(lower))
		}
		// A file of the image owned by uid 1000 is the range's 1000th id.
		if uid := owner(t, filepath.Join(dir, "data/containers", name, "etc/app.conf")); uid != rec.IDBase+1000 {
			t.Errorf("%s: the image's etc/app.conf (uid 1000), seen in its root, owned by %d, want %d", name, uid, rec.IDBase+1000)
		}
		if uid := owner(t, filepath.Join(dir, "data/containers", name, "bin/busybox")); uid != rec.IDBase {
			t.Errorf("%s: the image's busybox, seen in its root, owned by %d, want %d", name, uid, rec.IDBase)
		}
	}
	if uid := owner(t, filepath.Join(svc.store.RootFS(digest), "bin/busybox")); uid != 0 {
		t.Errorf("the image's busybox in the store owned by %d, want 0 (untouched)", uid)
	}

	// A reboot: a new Service on the same state.db and data root gives
	// each container its recorded range again.
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := svc.Stop(stopCtx, 5*time.Second, ShutdownOperator); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"u1", "u2"} {
		os.Remove(filepath.Join(dir, "data/volumes", name, "data/who"))
	}
	if svc, err = New(opts); err != nil {
		t.Fatal(err)
	}
	if w := svc.Restore(); len(w) != 0 {
		t.Errorf("Restore: %q", w)
	}
	for base, name := range bases {
		if rec, err := svc.record(name); err != nil || rec.IDBase != base {
			t.Errorf("%s after a reboot: ids from %d (%v), want %d as before", name, rec.IDBase, err, base)
		}
		if who, want := waitFile(t, filepath.Join(dir, "data/volumes", name, "data/who")), fmt.Sprintf("0 0 %d 65536", base); who != want {
			t.Errorf("%s after a reboot: id -u and uid_map = %q, want %q", name, who, want)
		}
	}
}

func waitFile(t *testing.T, path string) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
	}
	logs, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "../../../logs/*/*"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		t.Logf("%s:\n%s", l, b)
	}
	t.Fatalf("no %s after 30s", path)
	return ""
}

func owner(t *testing.T, path string) uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Errorf("%v", err)
	}
	return st.Uid
}

// The same image at every rung the node is told it has: the right rung
// recorded, and the workload sees what that rung gives it (the node's
// hostname or its own; no /proc, the node's ids, or a range of its own;
// a cgroup of its own at the top).
func TestRootEveryRung(t *testing.T) {
	testkit.NeedRoot(t)
	node, _ := os.Hostname()
	script := `h=$(hostname); m=-; [ -r /proc/self/uid_map ] && read a b c < /proc/self/uid_map && m="$a $b $c"; ` +
		`g=-; grep -q containers/every /proc/self/cgroup 2>/dev/null && g=own; echo "$h|$m|$g" > /data/who; exec sleep 1000`
	for _, rung := range []isolation.Rung{isolation.Chroot, isolation.Namespaces, isolation.Userns, isolation.Cgroups} {
		t.Run(rung.String(), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			os.Chmod(dir, 0o755)
			os.Chmod(filepath.Dir(dir), 0o755)
			log := slog.New(slog.DiscardHandler)
			db, err := state.Open(filepath.Join(dir, "state.db"), log)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			svc, err := New(Options{DB: db, Data: filepath.Join(dir, "data"), Starter: testkit.Starter, Mounter: realMounter{}, Log: log,
				IDMapper:  idmap.Mapper{Starter: testkit.Starter, Exe: "/proc/self/exe"},
				Isolation: func() isolation.Report { return isolation.Report{Highest: rung} }})
			if err != nil {
				t.Fatal(err)
			}
			if rung == isolation.Cgroups {
				base := fmt.Sprintf("/allium-apps-test-%d", os.Getpid())
				h, err := cgroup.Open("/sys/fs/cgroup", base)
				if err != nil {
					t.Skipf("no usable cgroup hierarchy here: %v", err)
				}
				defer func() {
					for _, g := range []string{"containers", ""} {
						h.Group(g).Remove()
					}
				}()
				svc.UseCgroups(h, 1<<30)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				svc.RemoveContainer(ctx, "every")
				svc.Stop(ctx, 5*time.Second, ShutdownOperator)
			}()
			data, digest := busyboxImage(t, script)
			if _, err := svc.PutImage(ctx, digest, 0, int64(len(data)), bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			c, err := svc.PutContainer(ctx, "every", api.ContainerRequest{Image: digest})
			if err != nil || c.Isolation != rung.String() {
				t.Fatalf("PutContainer = %+v, %v; want isolation %s", c, err, rung)
			}
			rec, _ := svc.record("every")
			want := map[isolation.Rung]string{
				isolation.Chroot:     node + "|-|-",
				isolation.Namespaces: "every|0 0 4294967295|-",
				isolation.Userns:     fmt.Sprintf("every|0 %d 65536|-", rec.IDBase),
				isolation.Cgroups:    fmt.Sprintf("every|0 %d 65536|own", rec.IDBase),
			}[rung]
			if got := waitFile(t, filepath.Join(dir, "data/volumes/every/data/who")); got != want || rec.Isolation != rung.String() {
				t.Errorf("at %s: the workload saw %q, want %q; recorded rung %q", rung, got, want, rec.Isolation)
			}
		})
	}
}
