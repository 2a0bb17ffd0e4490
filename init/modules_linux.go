package main

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"allium/rootfs"

	"golang.org/x/sys/unix"
)

// loadModules loads the modules mkimage listed, dependencies first: the
// early ones, or with late the ones nothing at boot waits for. A module
// that is missing or does not apply is a warning, never a stop: the
// machine may still boot with what the kernel has built in.
func loadModules(k moduleLoader, log *slog.Logger, root, release string, onXen, late bool) (warnings []string) {
	f, err := os.Open(filepath.Join(root, rootfs.ModulesOrderFile))
	if err != nil {
		log.Warn("modules: no module list; relying on built-in drivers", "err", err)
		return []string{"no kernel module list in the image"}
	}
	defer f.Close()
	built, order, err := rootfs.ParseModuleOrder(f)
	if err != nil {
		log.Warn("modules: bad module list", "err", err)
		return []string{err.Error()}
	}
	if built != release {
		msg := "modules were built for kernel " + built + " but " + release + " is running; skipping them"
		log.Warn("modules: " + msg)
		return []string{msg}
	}
	start := time.Now()
	loaded := 0
	for _, m := range order {
		if (m.XenOnly && !onXen) || m.Late != late {
			continue
		}
		err := k.LoadModule(filepath.Join(root, "lib/modules", release, m.Path))
		switch {
		case err == nil:
			loaded++
		case errors.Is(err, unix.EEXIST):
			// already loaded or built in
		case errors.Is(err, unix.ENODEV):
			log.Debug("modules: no device for module", "module", m.Path)
		default:
			log.Warn("modules: load failed", "module", m.Path, "err", err)
			warnings = append(warnings, "module "+m.Path+": "+err.Error())
		}
	}
	log.Info("modules loaded", "late", late, "count", loaded, "took", time.Since(start).Round(time.Millisecond))
	return warnings
}

// onXen reports whether this is a Xen guest.
func onXen(root string) bool {
	b, err := os.ReadFile(filepath.Join(root, "sys/hypervisor/type"))
	return err == nil && strings.TrimSpace(string(b)) == "xen"
}
