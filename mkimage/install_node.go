package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"strings"

	"allium/rootfs"
)

// nodeTarFile is the payload an OpenVZ/LXC takeover unpacks: what the
// node needs beside init in a container's own root filesystem.
//
// Why a tar of its own rather than taking these from initrd.img: the
// container has tar and gzip (Debian's minbase has both, as do busybox
// and every OpenVZ template) but no cpio, and the initramfs may be
// xz- or zstd-compressed; reading it would need init to run (a cpio
// reader and the decompressors are in it) before the switch, on the
// container's kernel, which makes the install depend on a binary the
// install has not checked yet. The tar is a few kilobytes: the keys,
// node.json and the account lines. tor is not in it: the takeover uses
// the container's own /usr/sbin/tor (apt-get install tor), whose
// libraries are the container's; a build with --no-tor needs none.
const nodeTarFile = "node.tar.gz"

// nodeTar is the gzip'd tar of etc/allium/: node.json (for a
// container: no data partition, the data stays in /var/lib/allium of
// its root filesystem), the keys, and passwd and group with the node's
// accounts (allium-tor), which the installer adds to the container's.
func nodeTar(s initrdSpec) ([]byte, error) {
	conf, err := rootfs.ParseNodeConfig(s.nodeConfig)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", nodeTarFile, err)
	}
	conf.Data = ""
	j, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, err
	}
	files := []bakedFile{
		{rootfs.NodeConfigFile, 0o600, append(j, '\n')},
		{rootfs.NodeKeyFile, 0o600, s.nodeKey},
		{rootfs.AuthorizedKeysFile, 0o600, s.authorizedKeys},
		{rootfs.ConfigDir + "/passwd", 0o644, rootfs.Passwd(rootfs.Users)},
		{rootfs.ConfigDir + "/group", 0o644, rootfs.Group(rootfs.Users)},
	}
	if s.onionKey != nil {
		files = append(files, bakedFile{rootfs.OnionKeyFile, 0o600, s.onionKey})
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	dir := strings.TrimPrefix(rootfs.ConfigDir, "/") + "/"
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o700, Format: tar.FormatUSTAR}); err != nil {
		return nil, err
	}
	for _, f := range files {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(f.name, "/"), Mode: int64(f.perm),
			Size: int64(len(f.data)), Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
