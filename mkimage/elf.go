package main

// Finding what a dynamically linked program needs, from its ELF headers
// alone (no ldd, which would run it): the loader named by PT_INTERP, and
// the DT_NEEDED libraries, recursively, searched for as glibc's ld.so
// does (ld.so(8), "Dynamic linking"):
//
//  1. DT_RPATH of the object, then of the object that loaded it, and so on
//     up to the program, unless the object has a DT_RUNPATH;
//  2. DT_RUNPATH of the object;
//  3. the system directories (libDirs).
//
// $ORIGIN in a path is the directory of the object: for the program its
// real path (as /proc/self/exe), for a library the path it was found at.
// Left out: LD_LIBRARY_PATH (not set for a container), /etc/ld.so.cache
// (the image has none, so its loader searches only the directories above;
// a library found only through the cache would not load there either),
// glibc-hwcaps subdirectories, and $LIB and $PLATFORM.

import (
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// libDirs are the system library directories, searched in this order:
// glibc's on Debian (multiarch first), then the lib64 of other
// distributions.
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// elfDeps is what a program needs to run.
type elfDeps struct {
	// interp is the PT_INTERP path; "" for a static binary.
	interp string
	// libs are the paths the libraries were found at, in the order
	// found (breadth first), each once.
	libs []string
}

// elfObject is what the search needs of one ELF file.
type elfObject struct {
	path           string // where it was found (in the image's terms)
	origin         string // $ORIGIN
	class          elf.Class
	machine        elf.Machine
	interp         string
	needed         []string
	rpath, runpath []string
	loader         *elfObject // the object whose DT_NEEDED brought it in
}

// elfResolver reads ELF files below root, the filesystem the image is
// made from: "/" except in tests.
type elfResolver struct {
	root string
	dirs []string
}

// resolve finds everything the program at prog (an absolute path) needs.
func (r *elfResolver) resolve(prog string) (elfDeps, error) {
	real, err := resolvePath(r.root, prog, nil)
	if err != nil {
		return elfDeps{}, err
	}
	obj, err := r.open(prog)
	if err != nil {
		return elfDeps{}, err
	}
	obj.origin = path.Dir(real)
	deps := elfDeps{interp: obj.interp}
	seen := map[string]bool{}
	for queue := []*elfObject{obj}; len(queue) > 0; queue = queue[1:] {
		for _, name := range queue[0].needed {
			if seen[name] {
				continue
			}
			seen[name] = true
			lib, err := r.find(name, queue[0], obj)
			if err != nil {
				return elfDeps{}, err
			}
			deps.libs = append(deps.libs, lib.path)
			queue = append(queue, lib)
		}
	}
	return deps, nil
}

// open reads the headers of the ELF file at image path p.
func (r *elfResolver) open(p string) (*elfObject, error) {
	real, err := resolvePath(r.root, p, nil)
	if err != nil {
		return nil, err
	}
	f, err := elf.Open(path.Join(r.root, real))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	defer f.Close()
	o := &elfObject{path: p, origin: path.Dir(p), class: f.Class, machine: f.Machine}
	if o.interp, err = interpreter(f); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	for _, d := range []struct {
		tag elf.DynTag
		out *[]string
	}{{elf.DT_NEEDED, &o.needed}, {elf.DT_RPATH, &o.rpath}, {elf.DT_RUNPATH, &o.runpath}} {
		if *d.out, err = f.DynString(d.tag); err != nil {
			return nil, fmt.Errorf("%s: %v: %w", p, d.tag, err)
		}
	}
	return o, nil
}

// interpreter is the PT_INTERP path, or "".
func interpreter(f *elf.File) (string, error) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, min(p.Filesz, 4096))
		if _, err := p.ReadAt(b, 0); err != nil {
			return "", fmt.Errorf("PT_INTERP: %w", err)
		}
		return strings.TrimRight(string(b), "\x00"), nil
	}
	return "", nil
}

// find looks for library name, needed by obj, of prog's class and
// machine.
func (r *elfResolver) find(name string, obj, prog *elfObject) (*elfObject, error) {
	candidates := []string{name} // a path is used as it is, not searched for
	if !strings.Contains(name, "/") {
		candidates = nil
		for _, dir := range r.searchPath(obj) {
			candidates = append(candidates, path.Join(dir, name))
		}
	}
	for _, p := range candidates {
		lib, err := r.open(p)
		if err == nil && lib.class == prog.class && lib.machine == prog.machine {
			lib.loader = obj
			return lib, nil
		}
	}
	return nil, fmt.Errorf("%w: %s, needed by %s (searched %s)",
		errLibraryNotFound, name, obj.path, strings.Join(r.searchPath(obj), ":"))
}

// searchPath is where a library obj needs is looked for, in order.
func (r *elfResolver) searchPath(obj *elfObject) []string {
	var dirs []string
	if len(obj.runpath) == 0 {
		for o := obj; o != nil; o = o.loader {
			dirs = append(dirs, expandOrigin(o.rpath, o.origin)...)
		}
	}
	dirs = append(dirs, expandOrigin(obj.runpath, obj.origin)...)
	return append(dirs, r.dirs...)
}

// expandOrigin splits DT_RPATH or DT_RUNPATH values at colons and
// replaces $ORIGIN and ${ORIGIN}. Relative entries (relative to the
// working directory, which is a bug in the binary) are dropped.
func expandOrigin(values []string, origin string) []string {
	var dirs []string
	for _, v := range values {
		for _, d := range strings.Split(v, ":") {
			d = strings.NewReplacer("${ORIGIN}", origin, "$ORIGIN", origin).Replace(d)
			if path.IsAbs(d) {
				dirs = append(dirs, path.Clean(d))
			}
		}
	}
	return dirs
}

// maxSymlinks is how many symlinks resolvePath follows, as the kernel.
const maxSymlinks = 40

// pathStep is one thing resolvePath found on its way: a directory, a
// symlink (target as written) or, last, the file itself.
type pathStep struct {
	name   string // image path, without the leading slash
	target string // a symlink's target
	info   fs.FileInfo
}

// resolvePath resolves the absolute image path p below root, component
// by component, as the kernel would inside the image. It calls visit for
// every directory, symlink and the final file on the way, and returns
// the real path.
func resolvePath(root, p string, visit func(pathStep) error) (string, error) {
	cur, rest := "", strings.Split(p, "/")
	for links := 0; len(rest) > 0; {
		part := rest[0]
		if rest = rest[1:]; part == "" || part == "." || part == ".." {
			if part == ".." {
				cur = parentDir(cur) // at the root, .. is the root
			}
			continue
		}
		cur = path.Join(cur, part)
		fi, err := os.Lstat(path.Join(root, cur))
		if err != nil {
			return "", fmt.Errorf("%s: %w", p, err)
		}
		step := pathStep{name: cur, info: fi}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if links++; links > maxSymlinks {
				return "", fmt.Errorf("%s: too many symlinks", p)
			}
			if step.target, err = os.Readlink(path.Join(root, cur)); err != nil {
				return "", err
			}
			cur, rest = parentDir(cur), append(strings.Split(step.target, "/"), rest...)
			if path.IsAbs(step.target) {
				cur = ""
			}
		case len(rest) > 0 && !fi.IsDir():
			return "", fmt.Errorf("%s: %s is not a directory", p, "/"+cur)
		}
		if visit != nil {
			if err := visit(step); err != nil {
				return "", err
			}
		}
	}
	return "/" + cur, nil
}

// parentDir is the directory of cur, a path relative to the root; ""
// is the root.
func parentDir(cur string) string {
	if d := path.Dir(cur); d != "." {
		return d
	}
	return ""
}
