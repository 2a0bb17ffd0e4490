package main

// A --binary pack: the rootfs of one program. Everything keeps the path
// it has on this machine, so the program's own path, the loader's
// PT_INTERP path and the library paths mean the same in the image:
//
//	/bin -> usr/bin                               symlinks on the way are kept
//	/usr/bin/true                                 the program
//	/lib64 -> usr/lib64                           (made relative, so none
//	/usr/lib64/ld-linux-x86-64.so.2 -> ../../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
//	/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2    points out of the image)
//	/usr/lib/x86_64-linux-gnu/libc.so.6           libraries at their real paths
//	/etc/passwd, /etc/group                       root and nobody
//	/tmp                                          1777
//
// The command defaults to the program's path as given (/bin/true). A
// program built in a home directory lands at that path in the image
// too: its $ORIGIN-relative RUNPATH keeps working that way.

import (
	"archive/tar"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
)

// Made-up /etc files: root, and nobody for --user nobody.
const (
	passwdFile = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	groupFile  = "root:x:0:\nnogroup:x:65534:\n"
)

// layout gathers the nodes of a --binary pack by image path.
type layout struct {
	root   string // the filesystem files are read from: "/" except in tests
	policy *entryPolicy
	nodes  map[string]node
}

// binaryNodes lays out the rootfs for prog (an absolute path) and what
// it needs.
func binaryNodes(root, prog string, deps elfDeps, p *entryPolicy) ([]node, error) {
	l, err := pathLayout(root, append([]string{prog}, deps.files()...), p)
	if err != nil {
		return nil, err
	}
	l.addMade()
	nodes := l.sorted()
	linkHardLinks(nodes)
	return nodes, nil
}

// files are the libraries and the loader.
func (d elfDeps) files() []string {
	files := slices.Clone(d.libs)
	if d.interp != "" {
		files = append(files, d.interp)
	}
	return files
}

// pathLayout lays out the files at paths (absolute, below root) and
// every directory and symlink on the way to each.
func pathLayout(root string, paths []string, p *entryPolicy) (*layout, error) {
	l := &layout{root: root, policy: p, nodes: map[string]node{}}
	for _, f := range paths {
		if _, err := resolvePath(root, f, l.add); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// sorted are the nodes, parents first.
func (l *layout) sorted() []node {
	nodes := make([]node, 0, len(l.nodes))
	for _, n := range l.nodes {
		nodes = append(nodes, n)
	}
	sortNodes(nodes)
	return nodes
}

// add adds one step of a path's resolution: a directory, a symlink or
// the file at its end.
func (l *layout) add(s pathStep) error {
	if _, ok := l.nodes[s.name]; ok {
		return nil
	}
	n, ok, err := l.policy.entry(s.name, filepath.Join(l.root, s.name), s.info)
	if err != nil || !ok {
		return err
	}
	switch n.hdr.Typeflag {
	case tar.TypeDir:
		n.hdr.ModTime = l.policy.madeTime() // not when some unrelated file changed
	case tar.TypeSymlink:
		n.hdr.Linkname = relTarget(s.name, s.target)
	case tar.TypeReg:
	default:
		return fmt.Errorf("/%s: not a regular file", s.name)
	}
	l.nodes[s.name] = n
	return nil
}

// relTarget makes an absolute symlink target relative to the link's
// directory, so that it points at the same file inside the image, even
// to a reader that refuses links leaving the tree. name is below the
// root with every parent a real directory.
func relTarget(name, target string) string {
	if !path.IsAbs(target) {
		return target
	}
	rel, err := filepath.Rel(path.Join("/", path.Dir(name)), path.Clean(target))
	if err != nil {
		return target
	}
	return rel
}

// addMade adds the root, /etc/passwd, /etc/group and /tmp, unless the
// program's paths brought them.
func (l *layout) addMade() {
	t := l.policy.madeTime()
	made := []struct {
		name string
		typ  byte
		mode int64
		data string
	}{
		{"", tar.TypeDir, 0o755, ""},
		{"etc", tar.TypeDir, 0o755, ""},
		{"etc/passwd", tar.TypeReg, 0o644, passwdFile},
		{"etc/group", tar.TypeReg, 0o644, groupFile},
		{"tmp", tar.TypeDir, 0o1777, ""},
	}
	for _, m := range made {
		if _, ok := l.nodes[m.name]; ok {
			continue
		}
		n := node{name: m.name, hdr: tar.Header{Typeflag: m.typ, Mode: m.mode, ModTime: t}}
		if o := l.policy.owner; o != nil {
			n.hdr.Uid, n.hdr.Gid = o[0], o[1]
		}
		if m.typ == tar.TypeReg {
			n.data, n.hdr.Size = []byte(m.data), int64(len(m.data))
		}
		l.nodes[m.name] = n
	}
}

// binaryRoot packs prog: it finds what prog needs and lays it out.
func binaryRoot(root, prog string, p *entryPolicy) ([]node, elfDeps, error) {
	r := &elfResolver{root: root, dirs: libDirs}
	deps, err := r.resolve(prog)
	if errors.Is(err, errLibraryNotFound) {
		return nil, elfDeps{}, fmt.Errorf("--binary %s: %w: install the package that has it, or pack a directory that holds the program and its libraries", prog, err)
	}
	if err != nil {
		return nil, elfDeps{}, fmt.Errorf("--binary %s: %w", prog, err)
	}
	nodes, err := binaryNodes(root, prog, deps, p)
	if err != nil {
		return nil, elfDeps{}, fmt.Errorf("--binary %s: %w", prog, err)
	}
	return nodes, deps, nil
}
