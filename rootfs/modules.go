package rootfs

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"
)

// Module is a kernel module the appliance wants loaded at boot.
type Module struct {
	Name string
	// XenOnly marks a module that is loaded only when
	// /sys/hypervisor/type says xen; elsewhere it would probe nothing
	// and return ENODEV after a wasted 60-70 ms.
	XenOnly bool
}

// Modules are the modules mkimage puts into the initramfs. Names may use
// "-" or "_"; a module built into the kernel is skipped.
var Modules = []Module{
	{Name: "virtio_pci"},
	{Name: "virtio_blk"},
	{Name: "virtio_net"},
	{Name: "virtio_console"},
	{Name: "virtio_rng"},
	{Name: "evdev"},  // the ACPI power button is read through evdev
	{Name: "button"}, // ACPI power button
	{Name: "overlay"},
	{Name: "veth"},
	{Name: "bridge"},
	{Name: "xen_blkfront", XenOnly: true},
	{Name: "xen_netfront", XenOnly: true},
}

// ModuleFile is one entry of the resolved load order.
type ModuleFile struct {
	// Path is relative to /lib/modules/KVER, as in modules.dep.
	Path string
	// XenOnly is set when only XenOnly modules need this file.
	XenOnly bool
}

// moduleName returns the canonical name of a module path:
// kernel/drivers/net/virtio_net.ko.xz -> virtio_net.
func moduleName(p string) string {
	base := path.Base(p)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// ResolveModules works out the load order of want from a kernel's
// modules.dep and modules.builtin: each module's dependencies come before
// it, and each file appears once. A wanted module that is built in is
// skipped; one that is neither built in nor in modules.dep is reported in
// missing, not as an error, because kernels differ in what they ship.
func ResolveModules(dep, builtin io.Reader, want []Module) (order []ModuleFile, missing []string, err error) {
	deps, err := parseModulesDep(dep)
	if err != nil {
		return nil, nil, err
	}
	built, err := parseBuiltin(builtin)
	if err != nil {
		return nil, nil, err
	}
	index := map[string]int{}
	var visit func(p string, xen bool, depth int)
	visit = func(p string, xen bool, depth int) {
		if i, ok := index[p]; ok {
			order[i].XenOnly = order[i].XenOnly && xen
			return
		}
		if depth > 64 { // a cycle in a corrupt modules.dep
			return
		}
		// Each file's own line names what it needs: load those first.
		for _, d := range deps.byPath[p] {
			visit(d, xen, depth+1)
		}
		index[p] = len(order)
		order = append(order, ModuleFile{Path: p, XenOnly: xen})
	}
	for _, m := range want {
		name := strings.ReplaceAll(m.Name, "-", "_")
		p, ok := deps.byName[name]
		if !ok {
			if !built[name] {
				missing = append(missing, m.Name)
			}
			continue
		}
		visit(p, m.XenOnly, 0)
	}
	return order, missing, nil
}

type modulesDep struct {
	byName map[string]string   // module name -> path
	byPath map[string][]string // path -> the paths it needs
}

func parseModulesDep(r io.Reader) (modulesDep, error) {
	md := modulesDep{byName: map[string]string{}, byPath: map[string][]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		file, rest, ok := strings.Cut(line, ":")
		if !ok || file == "" {
			return md, fmt.Errorf("modules.dep:%d: %q: want \"path.ko: deps...\"", n, line)
		}
		md.byName[moduleName(file)] = file
		md.byPath[file] = strings.Fields(rest)
	}
	if err := sc.Err(); err != nil {
		return md, fmt.Errorf("modules.dep: %w", err)
	}
	return md, nil
}

func parseBuiltin(r io.Reader) (map[string]bool, error) {
	built := map[string]bool{}
	if r == nil {
		return built, nil
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			built[moduleName(line)] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modules.builtin: %w", err)
	}
	return built, nil
}

// WriteModuleOrder renders the order file: the kernel release on the
// first line, then one module path per line, "xen" after it when the file
// is for Xen only.
func WriteModuleOrder(w io.Writer, release string, order []ModuleFile) error {
	var b strings.Builder
	fmt.Fprintf(&b, "release %s\n", release)
	for _, m := range order {
		if m.XenOnly {
			fmt.Fprintf(&b, "%s xen\n", m.Path)
		} else {
			fmt.Fprintf(&b, "%s\n", m.Path)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ParseModuleOrder reads what WriteModuleOrder wrote.
func ParseModuleOrder(r io.Reader) (release string, order []ModuleFile, err error) {
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 0:
			continue
		case n == 1 && len(f) == 2 && f[0] == "release":
			release = f[1]
		case len(f) == 1:
			order = append(order, ModuleFile{Path: f[0]})
		case len(f) == 2 && f[1] == "xen":
			order = append(order, ModuleFile{Path: f[0], XenOnly: true})
		default:
			return "", nil, fmt.Errorf("modules.order:%d: %q: want \"PATH [xen]\"", n, sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		return "", nil, fmt.Errorf("modules.order: %w", err)
	}
	if release == "" {
		return "", nil, fmt.Errorf("modules.order: no \"release\" line")
	}
	return release, order, nil
}
