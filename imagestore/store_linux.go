package imagestore

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// freeBytes is what an unprivileged user may still write on the
// filesystem of dir.
func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	return int64(st.Bavail) * st.Bsize, nil
}

// syncFS flushes the whole filesystem of dir: one call for every file
// of an unpacked tree, where an fsync each would cost a flush each.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return &os.PathError{Op: "syncfs", Path: dir, Err: err}
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// statDisk is the data root's filesystem's space.
func (s *Store) statDisk() (Disk, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(s.root, &st); err != nil {
		return Disk{}, &os.PathError{Op: "statfs", Path: s.root, Err: err}
	}
	return Disk{Total: int64(st.Blocks) * st.Bsize, Free: int64(st.Bavail) * st.Bsize,
		Files: st.Files, FilesFree: st.Ffree}, nil
}

// Preallocate keeps headroom bytes of the disk allocated to the file at
// path beyond its end (fallocate with FALLOC_FL_KEEP_SIZE), and fills
// any hole below its end, so that the file can be rewritten and grow by
// headroom on a disk with no space left: state.db's reserve, which
// nothing else can take. Call it again to restore the headroom once the
// file has grown into it. A filesystem without fallocate
// (EOPNOTSUPP) keeps no reserve, and says so.
func Preallocate(path string, headroom int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("imagestore: reserve: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("imagestore: reserve: %w", err)
	}
	fd := int(f.Fd())
	if fi.Size() > 0 {
		err = unix.Fallocate(fd, 0, 0, fi.Size())
	}
	if err == nil {
		err = unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, fi.Size(), headroom)
	}
	if err != nil {
		return fmt.Errorf("imagestore: reserve %d bytes for %s: %w", headroom, path, &os.PathError{Op: "fallocate", Path: path, Err: err})
	}
	return nil
}
