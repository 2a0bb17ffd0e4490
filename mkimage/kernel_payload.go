package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// More of the bzImage setup header (Documentation/arch/x86/boot.rst).
const (
	hdrSetupSectsOff = 0x1f1 // u8: setup sectors after the boot sector; 0 means 4
	hdrPayloadOff    = 0x248 // u32: payload_offset, from the protected-mode code (protocol 2.08+)
	hdrPayloadLenOff = 0x24c // u32: payload_length
	hdrProtocolOff   = 0x206 // u16: boot protocol version
)

// payloadMagics name a compressed vmlinux by its first bytes. xen marks
// the ones Xen's domain builder (libxenguest's bzImage loader, which
// PyGrub-booted PV guests go through) decodes.
var payloadMagics = []struct {
	magic []byte
	name  string
	xen   bool
}{
	{[]byte{0x1f, 0x8b}, "gzip", true},
	{[]byte{0xfd, '7', 'z', 'X', 'Z', 0}, "xz", true},
	{[]byte("BZh"), "bzip2", true},
	{[]byte{0x5d, 0, 0}, "lzma", true},
	{[]byte{0x89, 'L', 'Z', 'O'}, "lzo", true},
	{[]byte{0x02, 0x21, 0x4c, 0x18}, "lz4", true},
	{[]byte{0x7f, 'E', 'L', 'F'}, "none", true},
	{[]byte{0x28, 0xb5, 0x2f, 0xfd}, "zstd", false},
}

// kernelPayload names the compression of a bzImage's payload (the
// compressed vmlinux) and whether Xen's domain builder decodes it.
func kernelPayload(r io.ReaderAt) (name string, xen bool, err error) {
	hdr, err := setupHeader(r, 0x250)
	if err != nil {
		return "", false, err
	}
	if v := binary.LittleEndian.Uint16(hdr[hdrProtocolOff:]); v < 0x208 {
		return "", false, fmt.Errorf("bzImage boot protocol %#x: older than 2.08, it does not say where its payload is", v)
	}
	setup := int64(hdr[hdrSetupSectsOff])
	if setup == 0 {
		setup = 4
	}
	off := (setup+1)*sectorSize + int64(binary.LittleEndian.Uint32(hdr[hdrPayloadOff:]))
	if binary.LittleEndian.Uint32(hdr[hdrPayloadLenOff:]) == 0 {
		return "", false, errors.New("bzImage: payload_length is 0")
	}
	head := make([]byte, 6)
	if _, err := r.ReadAt(head, off); err != nil {
		return "", false, fmt.Errorf("bzImage: reading the payload at %#x: %w", off, err)
	}
	for _, m := range payloadMagics {
		if bytes.HasPrefix(head, m.magic) {
			return m.name, m.xen, nil
		}
	}
	return "", false, fmt.Errorf("bzImage: payload at %#x starts % x: an unknown compression", off, head)
}

// checkXenKernel refuses a kernel Xen could not boot from disk.img, and
// otherwise names its compression, for the summary.
func checkXenKernel(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("kernel: %w", err)
	}
	defer f.Close()
	name, xen, err := kernelPayload(f)
	if err != nil {
		return "", fmt.Errorf("kernel %s: %w", path, err)
	}
	if !xen {
		return "", fmt.Errorf("kernel %s: %w: its payload is %s-compressed; "+
			"ship a kernel compressed with gzip, xz, bzip2, lzma, lzo or lz4 (Debian's linux-image-cloud-amd64 is lz4), "+
			"or pass --no-disk to build without disk.img", path, errXenCompression, name)
	}
	return name, nil
}
