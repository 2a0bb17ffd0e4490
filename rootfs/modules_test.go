package rootfs

import (
	"slices"
	"strings"
	"testing"
)

// A slice of the Debian 6.1 cloud kernel's modules.dep.
const sampleDep = `kernel/drivers/acpi/button.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/xen-blkfront.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko
kernel/net/802/stp.ko: kernel/net/llc/llc.ko
kernel/net/llc/llc.ko:
`

func TestResolveModules(t *testing.T) {
	want := []Module{{Name: "virtio_net"}, {Name: "virtio-pci"}, {Name: "ext4"}, {Name: "bridge", Late: true}, {Name: "virtio", Late: true},
		{Name: "xen-blkfront", XenOnly: true}, {Name: "nosuch"}}
	order, missing, err := ResolveModules(strings.NewReader(sampleDep), strings.NewReader("kernel/fs/ext4/ext4.ko\n"), want)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, m := range order {
		paths = append(paths, m.Path)
	}
	// Every file must come after everything its own modules.dep line names.
	deps, _ := parseModulesDep(strings.NewReader(sampleDep))
	for i, p := range paths {
		for _, d := range deps.byPath[p] {
			if j := slices.Index(paths, d); j < 0 || j > i {
				t.Errorf("ResolveModules: %s at %d but its dependency %s at %d", p, i, d, j)
			}
		}
	}
	if n := len(paths); n != 12 {
		t.Errorf("ResolveModules: %d files, want 12 (each once): %v", n, paths)
	}
	if !slices.Equal(missing, []string{"nosuch"}) {
		t.Errorf("ResolveModules missing = %v, want [nosuch] (ext4 is built in)", missing)
	}
	for _, m := range order {
		if m.XenOnly != strings.Contains(m.Path, "xen") {
			t.Errorf("ResolveModules: %s XenOnly = %v", m.Path, m.XenOnly)
		}
		// bridge and its closure are late; virtio is late only if
		// nothing early needs it, and virtio_net does.
		if late := strings.Contains(m.Path, "bridge") || strings.Contains(m.Path, "802") || strings.Contains(m.Path, "llc"); m.Late != late {
			t.Errorf("ResolveModules: %s Late = %v, want %v", m.Path, m.Late, late)
		}
	}
}

func TestModuleOrderRoundTrip(t *testing.T) {
	in := []ModuleFile{{Path: "kernel/a.ko"}, {Path: "kernel/xen-b.ko", XenOnly: true}, {Path: "kernel/c.ko", Late: true}}
	var b strings.Builder
	if err := WriteModuleOrder(&b, "6.1.0-test", in); err != nil {
		t.Fatal(err)
	}
	rel, out, err := ParseModuleOrder(strings.NewReader(b.String()))
	if err != nil || rel != "6.1.0-test" || !slices.Equal(out, in) {
		t.Errorf("ParseModuleOrder(WriteModuleOrder(%v)) = %q, %v, %v", in, rel, out, err)
	}
	if _, _, err := ParseModuleOrder(strings.NewReader("kernel/a.ko\n")); err == nil {
		t.Errorf("ParseModuleOrder without a release line: no error")
	}
}
