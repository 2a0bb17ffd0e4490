package main

// The native image is a tar (README, "Images"; package manifest):
//
//	manifest.json          first, so a reader can validate before unpacking
//	rootfs/                the container's root
//	rootfs/bin -> usr/bin  then every entry below it, sorted by name, so
//	rootfs/etc/            each parent comes before its children
//	...
//
// Names are relative, owners numeric (no user or group names), mtimes
// whole seconds, and nothing depends on the walk order: the same tree
// gives the same bytes.

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"allium/manifest"
)

// node is one entry below rootfs/.
type node struct {
	// name is the slash path below rootfs/ ("usr/bin/true"); "" is
	// rootfs/ itself.
	name string
	// hdr is the entry's header. Its Name is set when written; a hard
	// link's Linkname is a name below rootfs/, like name.
	hdr tar.Header
	// src is the host file a regular file's contents are read from,
	// unless data is set.
	src string
	// data is the contents of a file made up by mkimage (/etc/passwd).
	data []byte
	// ino identifies the host file of a regular file with more than one
	// link; zero otherwise. Files that share it become tar hard links.
	ino inode
}

// inode identifies a host file.
type inode struct{ dev, ino uint64 }

// sortNodes puts nodes in the order they are written: by name, so that a
// parent (a prefix) comes before its children.
func sortNodes(nodes []node) {
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].name < nodes[j].name })
}

// linkHardLinks turns every regular file that shares its inode with an
// earlier one (in written order) into a hard link to that one.
func linkHardLinks(nodes []node) {
	first := map[inode]string{}
	for i := range nodes {
		n := &nodes[i]
		if n.ino == (inode{}) || n.hdr.Typeflag != tar.TypeReg {
			continue
		}
		if target, ok := first[n.ino]; ok {
			n.hdr.Typeflag, n.hdr.Linkname, n.hdr.Size, n.src = tar.TypeLink, target, 0, ""
			continue
		}
		first[n.ino] = n.name
	}
}

// tarName is a node's name in the archive: "rootfs/usr/bin/true", with a
// trailing slash for a directory.
func tarName(name string, typ byte) string {
	n := path.Join(manifest.RootfsDir, name)
	if typ == tar.TypeDir {
		n += "/"
	}
	return n
}

// writeImage writes the image's tar: manifest first, then nodes, which
// must be sorted and hold a node named "" (rootfs/ itself) first.
func writeImage(w io.Writer, mf []byte, mtime time.Time, nodes []node) error {
	tw := tar.NewWriter(w)
	hdr := &tar.Header{Name: manifest.File, Typeflag: tar.TypeReg, Mode: 0o644,
		Size: int64(len(mf)), ModTime: mtime}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", manifest.File, err)
	}
	if _, err := tw.Write(mf); err != nil {
		return fmt.Errorf("%s: %w", manifest.File, err)
	}
	for i := range nodes {
		if err := writeNode(tw, &nodes[i]); err != nil {
			return fmt.Errorf("%s: %w", tarName(nodes[i].name, nodes[i].hdr.Typeflag), err)
		}
	}
	return tw.Close()
}

func writeNode(tw *tar.Writer, n *node) error {
	hdr := n.hdr
	hdr.Name = tarName(n.name, hdr.Typeflag)
	if hdr.Typeflag == tar.TypeLink {
		hdr.Linkname = tarName(hdr.Linkname, tar.TypeReg)
	}
	if err := tw.WriteHeader(&hdr); err != nil {
		return err
	}
	switch {
	case hdr.Typeflag != tar.TypeReg:
		return nil
	case n.data != nil:
		_, err := tw.Write(n.data)
		return err
	}
	return copyFile(tw, n.src, hdr.Size)
}

// copyFile copies exactly size bytes of the host file src, the size its
// header promised.
func copyFile(w io.Writer, src string, size int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, size))
	if err == nil && n != size {
		err = fmt.Errorf("%s shrank from %d to %d bytes while being packed: pack it again", src, size, n)
	}
	return err
}

// outFile is the output written beside its final name and renamed over
// it when complete, so an interrupted run leaves the old file or the new
// one, never half of one.
type outFile struct {
	f    *os.File
	path string
}

func createOut(path string) (*outFile, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	return &outFile{f: f, path: path}, nil
}

// inode is the temporary file's identity, so a walk of a tree that holds
// the output skips it.
func (o *outFile) inode() (inode, error) {
	fi, err := o.f.Stat()
	if err != nil {
		return inode{}, fmt.Errorf("output: %w", err)
	}
	return inodeOf(fi), nil
}

// write runs fill on a buffered writer over the file and then, if all
// went well, makes the file visible under its name.
func (o *outFile) write(fill func(io.Writer) error) error {
	bw := bufio.NewWriterSize(o.f, 1<<20)
	err := fill(bw)
	for _, step := range []func() error{bw.Flush, func() error { return o.f.Chmod(0o644) }, o.f.Sync} {
		if err == nil {
			err = step()
		}
	}
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(o.f.Name(), o.path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", o.path, err)
	}
	return nil
}

// discard removes the temporary file; after a successful write it is
// gone already and this does nothing.
func (o *outFile) discard() {
	o.f.Close()
	os.Remove(o.f.Name())
}
