package imagestore

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"allium/manifest"
)

// Reading and removing the store's images.

// Image describes an image, or fails with ErrNotFound.
func (s *Store) Image(digest string) (Info, error) {
	h, err := digestHex(digest)
	if err != nil {
		return Info{}, err
	}
	b, err := os.ReadFile(filepath.Join(s.imagePath(h), infoFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, errorf(ErrNotFound, "imagestore: image %s: not on this node", digest)
	}
	var info archiveInfo
	if err == nil {
		err = json.Unmarshal(b, &info)
	}
	if err != nil {
		return Info{}, fmt.Errorf("imagestore: image %s: %s: %w", digest, infoFile, err)
	}
	m, err := s.Manifest(digest)
	if err != nil {
		return Info{}, err
	}
	return Info{Digest: digest, Name: m.Name, Size: info.Size, Created: info.Created}, nil
}

// List describes every image, oldest first. An image that cannot be
// read is logged and left out.
func (s *Store) List() ([]Info, error) {
	entries, err := os.ReadDir(s.path(imagesDir))
	if err != nil {
		return nil, fmt.Errorf("imagestore: %w", err)
	}
	var infos []Info
	for _, e := range entries {
		info, err := s.Image(digestAlgo + e.Name())
		if err != nil {
			s.log.Warn("unreadable image", "dir", e.Name(), "err", err)
			continue
		}
		infos = append(infos, info)
	}
	slices.SortFunc(infos, func(a, b Info) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.Digest, b.Digest))
	})
	return infos, nil
}

// Manifest returns an image's manifest, or fails with ErrNotFound.
func (s *Store) Manifest(digest string) (*manifest.Manifest, error) {
	h, err := digestHex(digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(s.imagePath(h), manifest.File))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errorf(ErrNotFound, "imagestore: image %s: not on this node", digest)
	}
	if err != nil {
		return nil, fmt.Errorf("imagestore: %w", err)
	}
	defer f.Close()
	m, err := manifest.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("imagestore: image %s: %w", digest, err)
	}
	return m, nil
}

// RootFS returns the directory of an image's tree ("" for a bad
// digest). It does not check that the image is there.
func (s *Store) RootFS(digest string) string {
	h, err := digestHex(digest)
	if err != nil {
		return ""
	}
	return filepath.Join(s.imagePath(h), manifest.RootfsDir)
}

// Remove deletes an image and any partial upload of it: the image
// leaves images/ by one rename into staging/, and is then removed
// there. A digest of which the node has only a partial upload removes
// that; one it has neither of fails with ErrNotFound, and one whose
// upload is in flight with ErrBusy. It does not know whether a
// container uses the image: ask first.
func (s *Store) Remove(digest string) error {
	h, err := digestHex(digest)
	if err != nil {
		return err
	}
	release, err := s.acquire(h)
	if err != nil {
		return err
	}
	defer release()
	return s.remove(digest, h)
}

func (s *Store) remove(digest, h string) error {
	if s.removePart(h) && !s.Has(digest) {
		s.log.Info("partial upload removed", "digest", digest)
		return nil
	}
	if !s.Has(digest) {
		return errorf(ErrNotFound, "imagestore: image %s: not on this node", digest)
	}
	trash, err := os.MkdirTemp(s.path(stagingDir), h+removedPart)
	if err == nil {
		err = os.Rename(s.imagePath(h), filepath.Join(trash, "image"))
	}
	if err == nil {
		err = removeAll(trash)
	}
	if err != nil {
		return fmt.Errorf("imagestore: remove %s: %w", digest, err)
	}
	s.log.Info("image removed", "digest", digest)
	return nil
}

// GC removes every image that inUse says no container uses, but those
// busy with an upload or removal, and returns their digests. It also
// drops upload parts untouched for PartMaxAge.
func (s *Store) GC(inUse func(digest string) bool) (removed []string, err error) {
	s.ExpireParts()
	entries, err := os.ReadDir(s.path(imagesDir))
	if err != nil {
		return nil, fmt.Errorf("imagestore: %w", err)
	}
	var errs []error
	for _, e := range entries {
		d := digestAlgo + e.Name()
		if _, err := digestHex(d); err != nil || inUse(d) {
			continue
		}
		release, err := s.acquire(e.Name())
		if err != nil {
			continue // busy: next time
		}
		err = s.remove(d, e.Name())
		release()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, d)
	}
	return removed, errors.Join(errs...)
}

// removeAll removes a tree that may hold read-only directories (an
// image's, when not running as root).
func removeAll(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}
