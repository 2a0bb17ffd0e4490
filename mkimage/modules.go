package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"allium/rootfs"
)

// moduleSet is what addModules put into the initramfs.
type moduleSet struct {
	order   []rootfs.ModuleFile
	missing []string // wanted, but neither built in nor in modules.dep
	bytes   int64
}

// resolveModules works out the load order of rootfs.Modules from modDir's
// modules.dep and modules.builtin.
func resolveModules(modDir string) (order []rootfs.ModuleFile, missing []string, err error) {
	dep, err := os.Open(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, nil, fmt.Errorf("kernel modules: %w: run depmod, or pass --modules with the modules of the kernel you ship", err)
	}
	defer dep.Close()
	var builtin io.Reader // a kernel may have nothing built in worth listing
	b, err := os.ReadFile(filepath.Join(modDir, "modules.builtin"))
	switch {
	case err == nil:
		builtin = bytes.NewReader(b)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, nil, fmt.Errorf("kernel modules: %w", err)
	}
	order, missing, err = rootfs.ResolveModules(dep, builtin, rootfs.Modules)
	if err != nil {
		return nil, nil, fmt.Errorf("kernel modules in %s: %w", modDir, err)
	}
	return order, missing, nil
}

// addModules copies the resolved module files, as they are (.ko, .ko.xz
// or .ko.zst), to /lib/modules/RELEASE/ and writes the load order to
// rootfs.ModulesOrderFile.
func addModules(a *archive, modDir, release string) (moduleSet, error) {
	order, missing, err := resolveModules(modDir)
	if err != nil {
		return moduleSet{}, err
	}
	set := moduleSet{order: order, missing: missing}
	for _, m := range order {
		b, err := os.ReadFile(filepath.Join(modDir, filepath.FromSlash(m.Path)))
		if err != nil {
			return moduleSet{}, fmt.Errorf("kernel module %s: %w: modules.dep lists it, so reinstall the kernel's modules", m.Path, err)
		}
		if err := a.File(path.Join("/lib/modules", release, m.Path), 0o644, b); err != nil {
			return moduleSet{}, err
		}
		set.bytes += int64(len(b))
	}
	var buf bytes.Buffer
	if err := rootfs.WriteModuleOrder(&buf, release, order); err != nil {
		return moduleSet{}, err
	}
	return set, a.File(rootfs.ModulesOrderFile, 0o644, buf.Bytes())
}
