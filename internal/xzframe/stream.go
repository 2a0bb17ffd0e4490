package xzframe

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// HeaderSize and FooterSize are the sizes of the stream header and
// footer.
const (
	HeaderSize = 12
	FooterSize = 12
)

var (
	headerMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0}
	footerMagic = []byte{'Y', 'Z'}
)

// flags are the stream flags of header and footer: a reserved zero
// byte, then the check ID.
func flags(c Check) []byte { return []byte{0, byte(c)} }

// parseFlags checks stream flags: reserved bits zero, a known check.
func parseFlags(f []byte) (Check, error) {
	c := Check(f[1])
	if f[0] != 0 || !c.known() {
		return 0, fmt.Errorf("stream flags %#x %#x: %w", f[0], f[1], ErrFormat)
	}
	return c, nil
}

// AppendHeader appends a stream header whose blocks end with check c.
func AppendHeader(b []byte, c Check) []byte {
	b = append(append(b, headerMagic...), flags(c)...)
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(flags(c)))
}

// ParseHeader checks the stream header at the start of h (HeaderSize
// bytes) and returns its check.
func ParseHeader(h []byte) (Check, error) {
	if len(h) < HeaderSize {
		return 0, fmt.Errorf("xz stream header: %w", ErrTruncated)
	}
	if !bytes.Equal(h[:6], headerMagic) {
		return 0, fmt.Errorf("xz stream header: no magic: %w", ErrFormat)
	}
	if binary.LittleEndian.Uint32(h[8:]) != crc32.ChecksumIEEE(h[6:8]) {
		return 0, fmt.Errorf("xz stream header: %w", ErrChecksum)
	}
	c, err := parseFlags(h[6:8])
	if err != nil {
		return 0, fmt.Errorf("xz stream header: %w", err)
	}
	return c, nil
}

// AppendFooter appends the stream footer that follows an index of
// indexSize bytes (a multiple of four, at least 8), for check c.
func AppendFooter(b []byte, c Check, indexSize int64) []byte {
	f := binary.LittleEndian.AppendUint32(nil, uint32(indexSize/4-1)) // backward size
	f = append(f, flags(c)...)
	b = binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(f))
	return append(append(b, f...), footerMagic...)
}

// ParseFooter checks the stream footer at the start of f (FooterSize
// bytes) and returns its check and the size of the index before it
// (at most 16 GiB).
func ParseFooter(f []byte) (Check, int64, error) {
	if len(f) < FooterSize {
		return 0, 0, fmt.Errorf("xz stream footer: %w", ErrTruncated)
	}
	if !bytes.Equal(f[10:12], footerMagic) {
		return 0, 0, fmt.Errorf("xz stream footer: no magic: %w", ErrFormat)
	}
	if binary.LittleEndian.Uint32(f) != crc32.ChecksumIEEE(f[4:10]) {
		return 0, 0, fmt.Errorf("xz stream footer: %w", ErrChecksum)
	}
	c, err := parseFlags(f[8:10])
	if err != nil {
		return 0, 0, fmt.Errorf("xz stream footer: %w", err)
	}
	return c, (int64(binary.LittleEndian.Uint32(f[4:])) + 1) * 4, nil
}
