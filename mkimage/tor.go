package main

// The tor closure in the initramfs (rootfs/tor.go says what it is). Every
// file keeps its build-host path, found the way `pack --binary` finds a
// program's (elf.go), so the loader's PT_INTERP path and its library
// search mean the same on the node:
//
//	/usr/sbin/tor -> ../bin/tor                     as on the build host
//	/usr/bin/tor
//	/lib64 -> usr/lib64
//	/usr/lib64/ld-linux-x86-64.so.2 -> ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
//	/lib/x86_64-linux-gnu -> ../usr/lib/x86_64-linux-gnu    see bypassLayoutDirs
//	/usr/lib/x86_64-linux-gnu/libc.so.6             libraries at their real paths
//	...
//
// A --tor binary elsewhere (/opt/tor/bin/tor) lands at its own path, and
// /usr/sbin/tor points at it, so a $ORIGIN in its RUNPATH still works.

import (
	"archive/tar"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"allium/rootfs"
)

// torBundle is the tor closure, read into memory once: both the
// initramfs and the archive that measures it take the same bytes.
type torBundle struct {
	exe   string            // the binary as given, absolute
	nodes []node            // sorted, parents first; files carry data
	links map[string]string // more symlinks: name -> absolute target
	libs  int               // the libraries among the files, loader included
	bytes int64             // the files' total size
	zsize int               // the closure alone, compressed as the initramfs is
}

// checkTor checks the tor flags against each other and the TCP flags.
func (f *applianceFlags) checkTor() error {
	switch {
	case f.noTor && f.tor != "":
		return usagef("--no-tor and --tor contradict each other: pass one")
	case f.noTor && f.torrc != "":
		return usagef("--no-tor and --torrc contradict each other: --torrc configures the node's tor")
	case f.noTor && f.noTCP:
		return usagef("--no-tor and --no-tcp leave the node no API but its unix socket: pass one")
	}
	return nil
}

// findTor reads the tor closure and the --torrc lines.
func (b *build) findTor(context.Context) (err error) {
	if b.f.noTor {
		return nil
	}
	if b.f.torrc != "" {
		if b.torrc, err = readTorrc(b.f.torrc); err != nil {
			return err
		}
	}
	exe := rootfs.TorExe
	if b.f.tor != "" {
		if exe, err = filepath.Abs(b.f.tor); err != nil {
			return fmt.Errorf("--tor %s: %w", b.f.tor, err)
		}
	}
	b.tor, err = torClosure("/", exe)
	if errors.Is(err, fs.ErrNotExist) {
		what := "this machine has no tor at " + exe
		if b.f.tor != "" {
			what = "--tor " + b.f.tor + ": no such file"
		}
		return fmt.Errorf("%s: install tor (apt-get install tor) or pass --tor PATH or --no-tor", what)
	}
	return err
}

// torClosure lays out the tor binary at exe (absolute, below root) and
// everything it needs to run, and reads the files.
func torClosure(root, exe string) (*torBundle, error) {
	if err := checkELF(filepath.Join(root, exe)); err != nil {
		return nil, err
	}
	r := &elfResolver{root: root, dirs: libDirs}
	deps, err := r.resolve(exe)
	if errors.Is(err, errLibraryNotFound) {
		return nil, fmt.Errorf("tor %s: %w: install the package that has it, or pass --tor with a static tor", exe, err)
	}
	if err != nil {
		return nil, fmt.Errorf("tor %s: %w", exe, err)
	}
	more, err := dlopened(r, exe, deps)
	if err != nil {
		return nil, err
	}
	deps.libs = append(deps.libs, more...)
	t := &torBundle{exe: exe, links: map[string]string{}, libs: len(deps.files())}
	paths := append([]string{exe}, deps.files()...)
	for i, p := range paths {
		if paths[i], err = bypassLayoutDirs(root, p, t.links); err != nil {
			return nil, fmt.Errorf("tor %s: %w", exe, err)
		}
	}
	l, err := pathLayout(root, paths, &entryPolicy{owner: &[2]int{0, 0}, warn: &warnings{}})
	if err == nil {
		err = t.bypassLinks(root, l)
	}
	if err != nil {
		return nil, fmt.Errorf("tor %s: %w", exe, err)
	}
	if _, ok := l.nodes[strings.TrimPrefix(rootfs.TorExe, "/")]; !ok {
		t.links[rootfs.TorExe] = exe
	}
	return t, t.read(l.sorted())
}

// checkELF says in words when the file at p is not an ELF executable.
func checkELF(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		var fe *elf.FormatError
		if errors.As(err, &fe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("tor %s: not an ELF executable (%v): want a tor binary", p, err)
		}
		return err
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("tor %s: an ELF %v, want an executable", p, f.Type)
	}
	return nil
}

// bypassLinks makes the links that keep the symlinks of the closure
// working where their targets go through a layout directory
// (bypassLayoutDirs), such as Debian's /usr/lib64/ld-linux-x86-64.so.2
// -> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2, and drops the symlinks
// at the layout directories themselves: the initramfs has directories
// there.
func (t *torBundle) bypassLinks(root string, l *layout) error {
	for name, n := range l.nodes {
		if n.hdr.Typeflag != tar.TypeSymlink {
			continue
		}
		if layoutDirs["/"+name] {
			delete(l.nodes, name)
			continue
		}
		target := n.hdr.Linkname
		if !path.IsAbs(target) {
			target = path.Join("/", path.Dir(name), target)
		}
		if _, err := bypassLayoutDirs(root, target, t.links); err != nil {
			return err
		}
	}
	return nil
}

// dlopened finds rootfs.TorDlopened for a program linked with glibc;
// one the build host lacks is left out, as glibc only needs it when a
// thread exits.
func dlopened(r *elfResolver, exe string, deps elfDeps) ([]string, error) {
	if !slices.ContainsFunc(deps.libs, func(l string) bool { return path.Base(l) == "libc.so.6" }) {
		return nil, nil
	}
	prog, err := r.open(exe)
	if err != nil {
		return nil, err
	}
	var libs []string
	for _, name := range rootfs.TorDlopened {
		lib, err := r.find(name, prog, prog)
		if errors.Is(err, errLibraryNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sub, err := r.resolve(lib.path)
		if err != nil {
			return nil, fmt.Errorf("tor %s: %w", exe, err)
		}
		for _, l := range append([]string{lib.path}, sub.libs...) {
			if !slices.Contains(deps.libs, l) && !slices.Contains(libs, l) {
				libs = append(libs, l)
			}
		}
	}
	return libs, nil
}

// read keeps nodes, reading the regular files' contents.
func (t *torBundle) read(nodes []node) error {
	for i := range nodes {
		n := &nodes[i]
		if n.hdr.Typeflag != tar.TypeReg {
			continue
		}
		data, err := os.ReadFile(n.src)
		if err != nil {
			return fmt.Errorf("tor closure: %w", err)
		}
		n.data, n.src = data, ""
		t.bytes += int64(len(data))
	}
	t.nodes = nodes
	return nil
}

// layoutDirs are the directories the initramfs has of its own
// (rootfs.Dirs), by path.
var layoutDirs = func() map[string]bool {
	m := map[string]bool{}
	for _, d := range rootfs.Dirs {
		m[d.Path] = true
	}
	return m
}()

// bypassLayoutDirs rewrites the image path p so that it does not go
// through a directory of the initramfs's own layout that is a symlink
// on the build host: with a merged /usr, /lib -> usr/lib, but the
// initramfs has a real /lib (for /lib/modules). The child of that
// directory on p's way becomes a symlink into the real location, saved
// in links, so p still resolves on the node:
//
//	/lib/x86_64-linux-gnu/libc.so.6
//	  => /usr/lib/x86_64-linux-gnu/libc.so.6, and
//	     links["/lib/x86_64-linux-gnu"] = "/usr/lib/x86_64-linux-gnu"
func bypassLayoutDirs(root, p string, links map[string]string) (string, error) {
	for range maxSymlinks {
		parts := strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/")
		i := 1
		for ; i < len(parts); i++ {
			dir := "/" + path.Join(parts[:i]...)
			if fi, err := os.Lstat(filepath.Join(root, dir)); layoutDirs[dir] && err == nil && fi.Mode()&fs.ModeSymlink != 0 {
				break
			}
		}
		if i == len(parts) {
			return p, nil
		}
		real, err := resolvePath(root, "/"+path.Join(parts[:i]...), nil)
		if err != nil {
			return "", err
		}
		link, target := "/"+path.Join(parts[:i+1]...), path.Join(real, parts[i])
		links[link] = target
		p = path.Join(target, path.Join(parts[i+1:]...))
	}
	return "", fmt.Errorf("%s: too many symlinks", p)
}

// addTor adds the closure to the initramfs. A directory the layout has
// already (/tmp, /var) keeps the layout's mode.
func addTor(a *archive, t *torBundle) error {
	for _, n := range t.nodes {
		name := "/" + n.name
		var err error
		switch n.hdr.Typeflag {
		case tar.TypeDir:
			if a.hasDir(name) || name == "/" {
				continue
			}
			err = a.Dir(name, fs.FileMode(n.hdr.Mode))
		case tar.TypeSymlink:
			err = a.Symlink(name, n.hdr.Linkname)
		case tar.TypeReg:
			err = a.File(name, fs.FileMode(n.hdr.Mode), n.data)
		default:
			err = fmt.Errorf("%s: not a file, directory or symlink", name)
		}
		if err != nil {
			return fmt.Errorf("tor closure: %w", err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(t.links)) {
		if err := a.Symlink(name, relTarget(strings.TrimPrefix(name, "/"), t.links[name])); err != nil {
			return fmt.Errorf("tor closure: %w", err)
		}
	}
	return nil
}

// readTorrc reads the lines of a --torrc file, without blank lines and
// comments.
func readTorrc(file string) ([]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--torrc: %w", err)
	}
	var lines []string
	for l := range strings.Lines(string(b)) {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("--torrc %s: no torrc lines in it (only blank lines and comments)", file)
	}
	return lines, nil
}
