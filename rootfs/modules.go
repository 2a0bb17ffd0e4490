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
	// Late marks a module nothing at boot waits for: init loads it
	// after the API is up, which shortens the time to the first answer.
	Late bool
}

// Modules are the modules mkimage puts into the initramfs. Names may use
// "-" or "_"; a module built into the kernel is skipped.
var Modules = []Module{
	{Name: "virtio_pci"},
	{Name: "virtio_blk"},
	{Name: "virtio_net"},
	{Name: "virtio_console", Late: true},
	{Name: "virtio_rng", Late: true},
	{Name: "evdev", Late: true},  // the ACPI power button is read through evdev
	{Name: "button", Late: true}, // ACPI power button
	{Name: "overlay"},            // container roots, restored at boot
	{Name: "veth", Late: true},
	{Name: "bridge", Late: true},
	// nf_tables for private networks: NAT out, published ports (DNAT).
	{Name: "nf_tables", Late: true},
	{Name: "nft_chain_nat", Late: true},
	{Name: "nft_masq", Late: true},
	{Name: "nft_nat", Late: true},
	{Name: "nft_fib_ipv4", Late: true}, // "fib daddr type local": a published port on every node address
	{Name: "nft_ct", Late: true},       // the forward filter: replies and published ports reach the bridge
	{Name: "xen_blkfront", XenOnly: true},
	{Name: "xen_netfront", XenOnly: true},
}

// ModuleFile is one entry of the resolved load order.
type ModuleFile struct {
	// Path is relative to /lib/modules/KVER, as in modules.dep.
	Path string
	// XenOnly is set when only XenOnly modules need this file.
	XenOnly bool
	// Late is set when only Late modules need this file.
	Late bool
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
	var visit func(p string, m Module, depth int)
	visit = func(p string, m Module, depth int) {
		if i, ok := index[p]; ok {
			order[i].XenOnly = order[i].XenOnly && m.XenOnly
			order[i].Late = order[i].Late && m.Late
			return
		}
		if depth > 64 { // a cycle in a corrupt modules.dep
			return
		}
		// Each file's own line names what it needs: load those first.
		for _, d := range deps.byPath[p] {
			visit(d, m, depth+1)
		}
		index[p] = len(order)
		order = append(order, ModuleFile{Path: p, XenOnly: m.XenOnly, Late: m.Late})
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
		visit(p, m, 0)
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
// first line, then one module path per line, followed by "xen" when the
// file is for Xen only and "late" when it may load after the API is up.
func WriteModuleOrder(w io.Writer, release string, order []ModuleFile) error {
	var b strings.Builder
	fmt.Fprintf(&b, "release %s\n", release)
	for _, m := range order {
		b.WriteString(m.Path)
		if m.XenOnly {
			b.WriteString(" xen")
		}
		if m.Late {
			b.WriteString(" late")
		}
		b.WriteString("\n")
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
			continue
		}
		m, err := parseOrderLine(f)
		if err != nil {
			return "", nil, fmt.Errorf("modules.order:%d: %q: %w", n, sc.Text(), err)
		}
		order = append(order, m)
	}
	if err := sc.Err(); err != nil {
		return "", nil, fmt.Errorf("modules.order: %w", err)
	}
	if release == "" {
		return "", nil, fmt.Errorf("modules.order: no \"release\" line")
	}
	return release, order, nil
}

func parseOrderLine(f []string) (ModuleFile, error) {
	m := ModuleFile{Path: f[0]}
	for _, flag := range f[1:] {
		switch flag {
		case "xen":
			m.XenOnly = true
		case "late":
			m.Late = true
		default:
			return m, fmt.Errorf("unknown flag %q (want xen or late)", flag)
		}
	}
	return m, nil
}
