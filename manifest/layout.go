package manifest

import (
	"archive/tar"
	"errors"
	"fmt"
	"path"
	"strings"
)

// The archive layout rule, which the client's check before an upload
// and the node's unpacking both apply, entry by entry, so that an image
// the client accepts is one the node accepts:
//
//   - manifest.json is the first entry, because the manifest says
//     whether devices and setuid files are wanted before any file of
//     rootfs/ is written. Only the archive's top directory ("./") and
//     pax global headers (git archive writes one) may come before it;
//     they carry nothing.
//   - Every other entry is rootfs or below it; there is one
//     manifest.json.
//   - No name is absolute or holds "..".
//
// mkimage pack writes archives this way; with tar:
//
//	tar -cf app.tar manifest.json rootfs

// Part is what an entry of an image archive is.
type Part int

const (
	// Skip is an entry with nothing to write: the archive's top
	// directory, or a pax global header.
	Skip Part = iota
	// ManifestPart is manifest.json.
	ManifestPart
	// RootfsPart is rootfs/ or an entry below it.
	RootfsPart
)

// Layout checks an image archive's entries against the layout rule, in
// the archive's order. Its zero value is at the archive's start.
type Layout struct {
	manifest bool // manifest.json has been seen
}

// ErrManifestNotFirst is the rule's refusal of an entry of rootfs/ that
// comes before manifest.json.
var ErrManifestNotFirst = fmt.Errorf("comes before %s; %s must be the archive's first entry "+
	"(mkimage pack puts it first; with tar: tar -cf app.tar %s %s)", File, File, File, RootfsDir)

// Next classifies the archive's next entry. For a RootfsPart it also
// returns the entry's path below rootfs ("" for rootfs itself). The
// error says what is wrong with the entry, without naming it: the
// caller does.
func (l *Layout) Next(h *tar.Header) (Part, string, error) {
	if h.Typeflag == tar.TypeXGlobalHeader {
		return Skip, "", nil // pax defaults; archive/tar applies none
	}
	name, ok := CleanName(h.Name)
	switch {
	case !ok:
		return 0, "", errors.New("path escapes the image")
	case name == "":
		return Skip, "", nil
	case name == File && l.manifest:
		return 0, "", fmt.Errorf("a second %s", File)
	case name == File:
		l.manifest = true
		return ManifestPart, "", nil
	}
	rel, ok := RootfsPath(name)
	switch {
	case !ok:
		return 0, "", fmt.Errorf("not %s nor under %s/", File, RootfsDir)
	case !l.manifest:
		return 0, "", ErrManifestNotFirst
	}
	return RootfsPart, rel, nil
}

// CleanName strips a leading "./" and trailing slashes, and reports
// whether the name stays inside the archive: not absolute, no "..", no
// NUL. The archive's top directory is "".
func CleanName(name string) (string, bool) {
	for strings.HasPrefix(name, "./") {
		name = name[2:]
	}
	if path.IsAbs(name) || strings.ContainsRune(name, 0) {
		return "", false
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", false
		}
	}
	if name = path.Clean(name); name == "." {
		name = ""
	}
	return name, true
}

// RootfsPath returns a clean name's path below rootfs ("" for rootfs
// itself), and false if the name is not in rootfs.
func RootfsPath(name string) (string, bool) {
	if name == RootfsDir {
		return "", true
	}
	rel, ok := strings.CutPrefix(name, RootfsDir+"/")
	return rel, ok
}
