package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// elfSpec is what a synthetic ELF file declares.
type elfSpec struct {
	machine        elf.Machine // zero means x86-64
	interp         string
	needed         []string
	rpath, runpath string
}

// buildELF makes a minimal 64-bit little-endian ELF file holding what
// the resolver reads: PT_INTERP, and a .dynamic section over a .dynstr.
// Nothing in it is loadable.
func buildELF(s elfSpec) []byte {
	dynstr := []byte{0}
	str := func(v string) uint64 {
		off := len(dynstr)
		dynstr = append(append(dynstr, v...), 0)
		return uint64(off)
	}
	var dyn []elf.Dyn64
	for _, d := range []struct {
		tag elf.DynTag
		v   []string
	}{{elf.DT_NEEDED, s.needed}, {elf.DT_RPATH, nonEmpty(s.rpath)}, {elf.DT_RUNPATH, nonEmpty(s.runpath)}} {
		for _, v := range d.v {
			dyn = append(dyn, elf.Dyn64{Tag: int64(d.tag), Val: str(v)})
		}
	}
	dyn = append(dyn, elf.Dyn64{}) // DT_NULL
	var dynBytes bytes.Buffer
	binary.Write(&dynBytes, binary.LittleEndian, dyn)
	shstr := []byte("\x00.interp\x00.dynstr\x00.dynamic\x00.shstrtab\x00")

	// Layout: header, program headers, then each blob 8-aligned, then
	// the section headers.
	nph := 0
	if s.interp != "" {
		nph = 1
	}
	blobs := [][]byte{append([]byte(s.interp), 0), dynstr, dynBytes.Bytes(), shstr}
	offs, end := make([]int, len(blobs)), 64+56*nph
	for i, b := range blobs {
		end = (end + 7) &^ 7
		offs[i], end = end, end+len(b)
	}
	shoff := (end + 7) &^ 7
	sections := []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Off: uint64(offs[0]), Size: uint64(len(blobs[0])), Addralign: 1},
		{Name: 9, Type: uint32(elf.SHT_STRTAB), Off: uint64(offs[1]), Size: uint64(len(dynstr)), Addralign: 1},
		{Name: 17, Type: uint32(elf.SHT_DYNAMIC), Off: uint64(offs[2]), Size: uint64(dynBytes.Len()), Link: 2, Entsize: 16, Addralign: 8},
		{Name: 26, Type: uint32(elf.SHT_STRTAB), Off: uint64(offs[3]), Size: uint64(len(shstr)), Addralign: 1},
	}
	machine := s.machine
	if machine == 0 {
		machine = elf.EM_X86_64
	}
	hdr := elf.Header64{Type: uint16(elf.ET_DYN), Machine: uint16(machine), Version: 1,
		Shoff: uint64(shoff), Ehsize: 64, Phentsize: 56, Phnum: uint16(nph), Shentsize: 64,
		Shnum: uint16(len(sections)), Shstrndx: uint16(len(sections) - 1)}
	copy(hdr.Ident[:], []byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)})
	if nph > 0 {
		hdr.Phoff = 64
	}
	out := make([]byte, shoff)
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, hdr)
	if nph > 0 {
		binary.Write(&b, binary.LittleEndian, elf.Prog64{Type: uint32(elf.PT_INTERP), Flags: uint32(elf.PF_R),
			Off: uint64(offs[0]), Filesz: uint64(len(blobs[0])), Memsz: uint64(len(blobs[0])), Align: 1})
	}
	copy(out, b.Bytes())
	for i, blob := range blobs {
		copy(out[offs[i]:], blob)
	}
	b.Reset()
	binary.Write(&b, binary.LittleEndian, sections)
	return append(out, b.Bytes()...)
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// layoutFS writes files (ELF specs, or symlinks written as "-> target")
// below a new root.
func layoutFS(t *testing.T, files map[string]any) string {
	t.Helper()
	root := t.TempDir()
	for p, v := range files {
		full := filepath.Join(root, p)
		must(t, os.MkdirAll(filepath.Dir(full), 0o755))
		switch v := v.(type) {
		case elfSpec:
			must(t, os.WriteFile(full, buildELF(v), 0o755))
		case string:
			must(t, os.Symlink(strings.TrimPrefix(v, "-> "), full))
		}
	}
	return root
}

// The synthetic ELF reads back as written, so the tests below test the
// resolver and not the fixture.
func TestBuildELF(t *testing.T) {
	root := layoutFS(t, map[string]any{"x": elfSpec{interp: "/lib/ld.so", needed: []string{"a.so", "b.so"}, runpath: "$ORIGIN/l"}})
	o, err := (&elfResolver{root: root}).open("/x")
	if err != nil {
		t.Fatal(err)
	}
	if o.interp != "/lib/ld.so" || !slices.Equal(o.needed, []string{"a.so", "b.so"}) || !slices.Equal(o.runpath, []string{"$ORIGIN/l"}) {
		t.Errorf("open(x) = interp %q needed %q runpath %q", o.interp, o.needed, o.runpath)
	}
}

// An application laid out as /opt/app/{bin,lib}, reached through a
// symlink in /usr/bin, finds its libraries through $ORIGIN RUNPATH (of
// its real path), skips a library of another machine, and its
// libraries' own needs come from the system directories.
func TestResolveOrigin(t *testing.T) {
	root := layoutFS(t, map[string]any{
		"usr/bin/app":                 "-> ../../opt/app/bin/app",
		"opt/app/bin/app":             elfSpec{interp: "/lib64/ld.so", needed: []string{"libfoo.so.1"}, runpath: "$ORIGIN/../arm:${ORIGIN}/../lib"},
		"opt/app/arm/libfoo.so.1":     elfSpec{machine: elf.EM_AARCH64},
		"opt/app/lib/libfoo.so.1":     "-> libfoo.so.1.2.3",
		"opt/app/lib/libfoo.so.1.2.3": elfSpec{needed: []string{"libc.so.6"}},
		"lib64/ld.so":                 "-> /usr/lib/ld.so",
		"usr/lib/ld.so":               elfSpec{},
		"usr/lib/libc.so.6":           elfSpec{},
	})
	r := &elfResolver{root: root, dirs: []string{"/usr/lib"}}
	deps, err := r.resolve("/usr/bin/app")
	if err != nil {
		t.Fatalf("resolve(/usr/bin/app) = %v", err)
	}
	want := []string{"/opt/app/lib/libfoo.so.1", "/usr/lib/libc.so.6"}
	if deps.interp != "/lib64/ld.so" || !slices.Equal(deps.libs, want) {
		t.Errorf("resolve(/usr/bin/app) = %q, %q; want /lib64/ld.so, %q", deps.interp, deps.libs, want)
	}
	nodes, err := binaryNodes(root, "/usr/bin/app", deps, &entryPolicy{warn: &warnings{}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, n := range nodes {
		got[n.name] = string(n.hdr.Typeflag) + n.hdr.Linkname
	}
	for name, w := range map[string]string{
		"usr/bin/app":                 string(tar.TypeSymlink) + "../../opt/app/bin/app",
		"opt/app/bin/app":             string(tar.TypeReg),
		"opt/app/lib/libfoo.so.1":     string(tar.TypeSymlink) + "libfoo.so.1.2.3",
		"opt/app/lib/libfoo.so.1.2.3": string(tar.TypeReg),
		"lib64/ld.so":                 string(tar.TypeSymlink) + "../usr/lib/ld.so", // made relative
		"usr/lib/ld.so":               string(tar.TypeReg),
		"etc/passwd":                  string(tar.TypeReg),
		"tmp":                         string(tar.TypeDir),
	} {
		if got[name] != w {
			t.Errorf("node %s = %q, want %q", name, got[name], w)
		}
	}
	if _, ok := got["opt/app/arm/libfoo.so.1"]; ok {
		t.Errorf("the aarch64 libfoo.so.1 was packed, want it skipped")
	}
}

// DT_RPATH is inherited by the libraries a program loads, unless they
// have a DT_RUNPATH of their own; DT_RUNPATH never is.
func TestResolveRpathInheritance(t *testing.T) {
	tests := []struct {
		name    string
		prog    elfSpec
		libfoo  elfSpec
		wantErr bool
	}{
		{"rpath inherited", elfSpec{needed: []string{"libfoo.so"}, rpath: "/app/lib"}, elfSpec{needed: []string{"libbar.so"}}, false},
		{"runpath of the library stops it", elfSpec{needed: []string{"libfoo.so"}, rpath: "/app/lib"},
			elfSpec{needed: []string{"libbar.so"}, runpath: "/nowhere"}, true},
		{"runpath is not inherited", elfSpec{needed: []string{"libfoo.so"}, runpath: "/app/lib"}, elfSpec{needed: []string{"libbar.so"}}, true},
	}
	for _, tt := range tests {
		root := layoutFS(t, map[string]any{"app/prog": tt.prog, "app/lib/libfoo.so": tt.libfoo, "app/lib/libbar.so": elfSpec{}})
		deps, err := (&elfResolver{root: root}).resolve("/app/prog")
		if tt.wantErr {
			if !errors.Is(err, errLibraryNotFound) || !strings.Contains(err.Error(), "libbar.so, needed by /app/lib/libfoo.so") {
				t.Errorf("%s: resolve = %v, want errLibraryNotFound naming libbar.so and libfoo.so", tt.name, err)
			}
			continue
		}
		if want := []string{"/app/lib/libfoo.so", "/app/lib/libbar.so"}; err != nil || !slices.Equal(deps.libs, want) {
			t.Errorf("%s: resolve = %q, %v; want %q", tt.name, deps.libs, err, want)
		}
	}
}

func TestResolvePath(t *testing.T) {
	root := layoutFS(t, map[string]any{
		"usr/lib/f": elfSpec{},
		"lib":       "-> usr/lib",
		"abs":       "-> /lib/f",
		"up":        "-> ../../../../lib/f", // .. stops at the root
		"loop":      "-> loop",
	})
	for _, tt := range []struct{ in, want string }{
		{"/lib/f", "/usr/lib/f"}, {"/abs", "/usr/lib/f"}, {"/up", "/usr/lib/f"}, {"/usr/../lib/./f", "/usr/lib/f"},
	} {
		if got, err := resolvePath(root, tt.in, nil); got != tt.want || err != nil {
			t.Errorf("resolvePath(%s) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"/loop", "/usr/lib/f/x", "/missing"} {
		if got, err := resolvePath(root, bad, nil); err == nil {
			t.Errorf("resolvePath(%s) = %q, nil; want an error", bad, got)
		}
	}
}

func TestRelTarget(t *testing.T) {
	for _, tt := range []struct{ name, target, want string }{
		{"usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "../../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
		{"bin", "usr/bin", "usr/bin"},
		{"lib64", "/usr/lib64", "usr/lib64"},
	} {
		if got := relTarget(tt.name, tt.target); got != tt.want {
			t.Errorf("relTarget(%q, %q) = %q, want %q", tt.name, tt.target, got, tt.want)
		}
	}
}
