package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"

	"allium/api"
	"allium/rootfs"
)

// initrdSpec is everything that goes into the initramfs.
type initrdSpec struct {
	init           []byte // the init binary, at /init
	release        string // kernel release, naming /lib/modules/RELEASE
	modDir         string // where that kernel's modules are on this machine
	nodeConfig     []byte // rootfs.NodeConfigFile
	nodeKey        []byte // rootfs.NodeKeyFile, PKCS#8 PEM
	authorizedKeys []byte // rootfs.AuthorizedKeysFile
}

// buildInitrd lays out the initramfs: the directories and symlinks of
// rootfs, /dev/console, /init, the baked configuration and the modules.
func buildInitrd(s initrdSpec) (*archive, moduleSet, error) {
	a := newArchive()
	if err := addLayout(a); err != nil {
		return nil, moduleSet{}, err
	}
	files := []struct {
		name string
		perm fs.FileMode
		data []byte
	}{
		{"/init", 0o755, s.init},
		{rootfs.NodeConfigFile, 0o600, s.nodeConfig},
		{rootfs.NodeKeyFile, 0o600, s.nodeKey},
		{rootfs.AuthorizedKeysFile, 0o600, s.authorizedKeys},
	}
	for _, f := range files {
		if err := a.File(f.name, f.perm, f.data); err != nil {
			return nil, moduleSet{}, err
		}
	}
	mods, err := addModules(a, s.modDir, s.release)
	if err != nil {
		return nil, moduleSet{}, err
	}
	return a, mods, nil
}

// addLayout adds rootfs.Dirs, rootfs.Symlinks and /dev/console, which the
// kernel opens for init's stdio before init can mount devtmpfs.
func addLayout(a *archive) error {
	for _, d := range rootfs.Dirs {
		if err := a.Dir(d.Path, d.Mode); err != nil {
			return err
		}
	}
	for name, target := range rootfs.Symlinks {
		if err := a.Symlink(name, target); err != nil {
			return err
		}
	}
	return a.CharDev("/dev/console", 0o600, 5, 1)
}

// nodeConfig renders the NodeConfig to bake, checked the way init will
// read it.
func (b *build) nodeConfig() ([]byte, error) {
	c := rootfs.NodeConfig{Name: b.f.name, Port: b.f.port}
	if !b.f.noData {
		c.Data = "LABEL=" + rootfs.DataLabel
	}
	j, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	j = append(j, '\n')
	if _, err := rootfs.ParseNodeConfig(j); err != nil {
		return nil, fmt.Errorf("bad node config (a bug): %w", err)
	}
	return j, nil
}

// writeInitrd builds, compresses and writes initrd.img, and node.json
// beside it.
func (b *build) writeInitrd(context.Context) error {
	spec, err := b.initrdSpec()
	if err != nil {
		return err
	}
	a, mods, err := buildInitrd(spec)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	if len(mods.missing) > 0 {
		b.warnf("kernel %s has no %s (neither built in nor in modules.dep): the appliance runs without them",
			b.release, strings.Join(mods.missing, ", "))
	}
	b.mods, b.entries = mods, a.Len()
	img, err := compressArchive(a, b.f.compress.value)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	if err := writeOut(b.path(initrdFile), img, 0o644); err != nil {
		return err
	}
	return writeOut(b.path(nodeJSONFile), spec.nodeConfig, 0o644)
}

func (b *build) initrdSpec() (initrdSpec, error) {
	conf, err := b.nodeConfig()
	if err != nil {
		return initrdSpec{}, err
	}
	key, err := api.MarshalPrivateKey(b.nodeKey)
	if err != nil {
		return initrdSpec{}, fmt.Errorf("node key: %w", err)
	}
	admin := api.AuthorizedKey{Key: b.clientKey.Public().(ed25519.PublicKey), Name: "admin"}
	return initrdSpec{
		init:           b.init,
		release:        b.release,
		modDir:         b.modDir,
		nodeConfig:     conf,
		nodeKey:        key,
		authorizedKeys: api.FormatAuthorizedKeys([]api.AuthorizedKey{admin}),
	}, nil
}
