//go:build !linux

package imagestore

import (
	"context"
	"errors"
	"io"
	"syscall"

	"allium/manifest"
)

// Elsewhere than Linux the package parses and validates manifests (for
// the cloud client and mkimage); unpacking and the store need Linux.

var errNotLinux = errors.New("imagestore: unpacking images needs Linux")

// Unpack needs Linux; see unpack_linux.go.
func Unpack(ctx context.Context, archive io.Reader, dst string, lim Limits) (*manifest.Manifest, Stats, error) {
	return nil, Stats{}, errNotLinux
}

func helperSysProcAttr() *syscall.SysProcAttr              { return nil }
func confineHelper(dst string, lim Limits) (string, error) { return "", errNotLinux }
func freeBytes(dir string) (int64, error)                  { return 0, errNotLinux }
func syncFS(dir string) error                              { return errNotLinux }
func syncDir(dir string) error                             { return errNotLinux }

func (s *Store) statDisk() (Disk, error)            { return Disk{}, errNotLinux }
func Preallocate(path string, headroom int64) error { return errNotLinux }
