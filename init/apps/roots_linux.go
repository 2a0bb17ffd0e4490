package apps

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"allium/internal/mountinfo"

	"allium/manifest"
	"allium/supervisor/idmap"

	"golang.org/x/sys/unix"
)

// Mounter is the mount(2) and umount2(2) the containers' roots need;
// PID 1 passes its kernel seam.
type Mounter interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
	Unmount(target string, flags int) error
}

// IDMapper binds a directory with its owners shifted into a range
// (idmap.Mapper); PID 1 passes one where the node may have idmapped
// mounts.
type IDMapper interface {
	Bind(src, dst string, r idmap.Range) error
}

// Container roots on the data root:
//
//	containers/NAME            the container's root: an overlay of the image's
//	                           rootfs (read-only) and overlay/NAME/upper, or a
//	                           copy of the image where overlayfs is missing
//	overlay/NAME/{upper,work}  the overlay's writable layer
//	overlay/NAME/lower         at the userns rung, the image's rootfs bound
//	                           with its owners shifted into the container's
//	                           range (an idmapped mount), the overlay's lower
//	                           layer; where the kernel cannot, the root is a
//	                           copy of the image with owners shifted
//	volumes/NAME/VOL           a declared volume, bind-mounted at its path
//	logs/NAME                  the container's log files
//
// /containers points at containers/, as in the original sketch.
type roots struct {
	m    Mounter
	ids  IDMapper // nil: no idmapped mounts; a userns root is a shifted copy
	data string   // the data root, rootfs.DataDir below the test root
}

func (r roots) root(name string) string    { return filepath.Join(r.data, "containers", name) }
func (r roots) overlay(name string) string { return filepath.Join(r.data, "overlay", name) }
func (r roots) logs(name string) string    { return filepath.Join(r.data, "logs", name) }
func (r roots) volume(name, vol string) string {
	return filepath.Join(r.data, "volumes", name, vol)
}

// prepare mounts (or copies) the image's rootfs as name's root and binds
// its volumes, the files the container may write owned by ids (the
// host's own for the zero Range). It is idempotent: a root already
// mounted is unmounted first, so a boot after a power cut starts clean.
func (r roots) prepare(name, image string, m *manifest.Manifest, ids idmap.Range) (mode string, err error) {
	r.release(name)
	root := r.root(name)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	if !ids.IsZero() {
		if err := r.traversable(); err != nil {
			return "", err
		}
	}
	mode, err = r.mountOverlay(name, image, ids)
	if err != nil {
		return "", err
	}
	for _, v := range m.Volumes {
		if err := r.bindVolume(name, v, ids); err != nil {
			r.release(name)
			return "", err
		}
	}
	return mode, nil
}

func (r roots) mountOverlay(name, image string, ids idmap.Range) (string, error) {
	ov := r.overlay(name)
	for _, d := range []string{"upper", "work"} {
		if err := os.MkdirAll(filepath.Join(ov, d), 0o755); err != nil {
			return "", err
		}
	}
	upper := filepath.Join(ov, "upper")
	if err := idmap.Own(upper, ids); err != nil {
		return "", fmt.Errorf("give the writable layer of %s to ids %s: %w", name, ids, err)
	}
	lower, mode := image, "overlay"
	if !ids.IsZero() {
		var err error
		if lower, err = r.idmapped(name, image, ids); err != nil {
			return r.copyRoot(name, image, ids, "copy shifted to "+ids.String()+" ("+err.Error()+")")
		}
		mode = "overlay idmapped to " + ids.String()
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, filepath.Join(ov, "work"))
	err := r.m.Mount("overlay", r.root(name), "overlay", 0, opts)
	if err == nil {
		return mode, nil
	}
	if !errors.Is(err, unix.ENODEV) && !errors.Is(err, unix.EINVAL) {
		return "", fmt.Errorf("mount the overlay for %s: %w", name, err)
	}
	// No overlayfs (an OpenVZ kernel, a missing module), or none on an
	// idmapped layer (Linux before 5.19): copy, once.
	r.release(name)
	if !ids.IsZero() {
		return r.copyRoot(name, image, ids, "copy shifted to "+ids.String()+" (overlay: "+err.Error()+")")
	}
	return r.copyRoot(name, image, ids, "copy")
}

// traversable lets anyone pass through the data root and containers/
// (o+x, not o+r: no one else may list them), as the shim at the userns
// rung needs: it is the container's root, no one to the node's files,
// when it binds the container's root by its path. What lies below them
// stays 0700 (images, uploads) or is the container's own.
func (r roots) traversable() error {
	for _, dir := range []string{r.data, filepath.Join(r.data, "containers")} {
		st, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if st.Mode()&0o001 == 0 {
			if err := os.Chmod(dir, st.Mode().Perm()|0o001); err != nil {
				return err
			}
		}
	}
	return nil
}

// idmapped binds the image's rootfs at overlay/NAME/lower with its
// owners shifted into ids, and returns that path.
func (r roots) idmapped(name, image string, ids idmap.Range) (string, error) {
	if r.ids == nil {
		return "", errors.New("no idmapped mounts on this node")
	}
	lower := filepath.Join(r.overlay(name), "lower")
	if err := os.MkdirAll(lower, 0o755); err != nil {
		return "", err
	}
	if err := r.ids.Bind(image, lower, ids); err != nil {
		return "", err
	}
	return lower, nil
}

// copyRoot makes name's root a copy of the image, once, its owners
// shifted to ids; a copy made before for other ids is shifted to them.
func (r roots) copyRoot(name, image string, ids idmap.Range, mode string) (string, error) {
	root := r.root(name)
	if entries, _ := os.ReadDir(root); len(entries) == 0 {
		return mode, copyTree(image, root, ids)
	}
	return mode, idmap.Own(root, ids)
}

func (r roots) bindVolume(name string, v manifest.Volume, ids idmap.Range) error {
	src := r.volume(name, v.Name)
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	if err := idmap.Own(src, ids); err != nil {
		return fmt.Errorf("volume %s: give it to ids %s: %w", v.Name, ids, err)
	}
	root, err := os.OpenRoot(r.root(name))
	if err != nil {
		return err
	}
	defer root.Close()
	// The path is resolved inside the container's root only: an image may
	// hold absolute symlinks (/data -> /), and mount(2) given the path
	// joined to the root would follow them on the node. So make and open
	// it through os.Root, and mount on the descriptor.
	if err := root.MkdirAll(v.Path[1:], 0o755); err != nil {
		return fmt.Errorf("volume %s at %s: %w", v.Name, v.Path, err)
	}
	dir, err := root.Open(v.Path[1:])
	if err != nil {
		return fmt.Errorf("volume %s at %s: %w", v.Name, v.Path, err)
	}
	defer dir.Close()
	target := fmt.Sprintf("/proc/self/fd/%d", dir.Fd())
	if err := r.m.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("volume %s at %s: %w", v.Name, v.Path, err)
	}
	return nil
}

// release unmounts everything below name's root and the root itself,
// and the idmapped image below it.
func (r roots) release(name string) {
	for _, dir := range []string{r.root(name), filepath.Join(r.overlay(name), "lower")} {
		for _, m := range mountinfo.Under(dir) {
			r.m.Unmount(m, unix.MNT_DETACH)
		}
	}
}

// reset releases name's root and deletes it and its overlay, so that a
// new image starts from a clean root. Volumes and logs stay.
func (r roots) reset(name string) error {
	r.release(name)
	return errors.Join(os.RemoveAll(r.root(name)), os.RemoveAll(r.overlay(name)))
}

// remove is reset, and the logs go too. Volumes stay.
func (r roots) remove(name string) error {
	return errors.Join(r.reset(name), os.RemoveAll(r.logs(name)))
}

// copyTree copies src to dst, keeping modes and symlinks, and owners
// moved from the host's ids to ids (the zero Range: kept as they are).
func copyTree(src, dst string, ids idmap.Range) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if err := copyEntry(p, target, info, ids); err != nil {
			return fmt.Errorf("copy %s: %w", rel, err)
		}
		return nil
	})
}

func copyEntry(src, dst string, info fs.FileInfo, ids idmap.Range) error {
	// Regression: this asserted *unix.Stat_t, which os.FileInfo never
	// holds (it is *syscall.Stat_t), so a copied root lost its owners.
	st, _ := info.Sys().(*syscall.Stat_t)
	switch {
	case info.IsDir():
		if err := os.MkdirAll(dst, info.Mode().Perm()); err != nil {
			return err
		}
	case info.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(t, dst); err != nil {
			return err
		}
	case info.Mode().IsRegular():
		if err := copyFile(src, dst, info.Mode()); err != nil {
			return err
		}
	default:
		return nil // devices and fifos were refused or allowed at unpack; skip them here
	}
	if st != nil {
		os.Lchown(dst, int(ids.Map(idmap.Host, st.Uid)), int(ids.Map(idmap.Host, st.Gid)))
	}
	if info.Mode()&fs.ModeSymlink == 0 {
		return os.Chmod(dst, info.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
	}
	return nil
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode.Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
