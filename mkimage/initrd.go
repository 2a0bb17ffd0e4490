package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"

	"allium/api"
	"allium/hiddenservice"
	"allium/rootfs"
)

// initrdSpec is everything that goes into the initramfs.
type initrdSpec struct {
	init           []byte // the init binary, at /init
	release        string // kernel release, naming /lib/modules/RELEASE
	modDir         string // where that kernel's modules are on this machine
	nodeConfig     []byte // rootfs.NodeConfigFile
	nodeKey        []byte // rootfs.NodeKeyFile, PKCS#8 PEM
	onionKey       []byte // rootfs.OnionKeyFile, PKCS#8 PEM; nil for none
	authorizedKeys []byte // rootfs.AuthorizedKeysFile
	tor            *torBundle
}

// bakedFile is a file mkimage makes up for the initramfs.
type bakedFile struct {
	name string
	perm fs.FileMode
	data []byte
}

// buildInitrd lays out the initramfs: the directories and symlinks of
// rootfs, /dev/console, /init, the baked configuration, the accounts, the
// modules and tor.
func buildInitrd(s initrdSpec) (*archive, moduleSet, error) {
	a := newArchive()
	if err := addLayout(a); err != nil {
		return nil, moduleSet{}, err
	}
	files := []bakedFile{
		{"/init", 0o755, s.init},
		{rootfs.NodeConfigFile, 0o600, s.nodeConfig},
		{rootfs.NodeKeyFile, 0o600, s.nodeKey},
		{rootfs.AuthorizedKeysFile, 0o600, s.authorizedKeys},
		{rootfs.PasswdFile, 0o644, rootfs.Passwd(rootfs.Users)},
		{rootfs.GroupFile, 0o644, rootfs.Group(rootfs.Users)},
	}
	if s.onionKey != nil {
		files = append(files, bakedFile{rootfs.OnionKeyFile, 0o600, s.onionKey})
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
	if s.tor != nil {
		if err := addTor(a, s.tor); err != nil {
			return nil, moduleSet{}, err
		}
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
	c := rootfs.NodeConfig{Name: b.f.name, Port: b.f.port, Built: b.built,
		Tor: rootfs.TorConfig{Off: b.f.noTor, Torrc: b.torrc}}
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
	measured := b.measureTor()
	img, err := compressArchive(a, b.f.compress.value)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	if err := <-measured; err != nil {
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
	var onionKey []byte
	if b.onion.service != nil {
		if onionKey, err = hiddenservice.MarshalKey(b.onion.service); err != nil {
			return initrdSpec{}, err
		}
	}
	admin := api.AuthorizedKey{Key: b.clientKey.Public().(ed25519.PublicKey), Onion: b.onion.clientPublic(), Name: "admin"}
	return initrdSpec{
		init:           b.init,
		release:        b.release,
		modDir:         b.modDir,
		nodeConfig:     conf,
		nodeKey:        key,
		onionKey:       onionKey,
		authorizedKeys: api.FormatAuthorizedKeys([]api.AuthorizedKey{admin}),
		tor:            b.tor,
	}, nil
}

// measureTor compresses the tor closure on its own, as the initramfs is
// compressed, to tell how much of the initramfs it is (the size of the
// initramfs is boot time under QEMU's TCG). It runs beside the
// initramfs's own compression; the channel says when it is done.
func (b *build) measureTor() <-chan error {
	done := make(chan error, 1)
	if b.tor == nil {
		done <- nil
		return done
	}
	go func() {
		a := newArchive()
		err := addTor(a, b.tor)
		if err == nil {
			var z []byte
			z, err = compressArchive(a, b.f.compress.value)
			b.tor.zsize = len(z)
		}
		done <- err
	}()
	return done
}
