package xzframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
)

func TestCheck(t *testing.T) {
	data := []byte("123456789") // the CRC catalogue's test input
	for _, tt := range []struct {
		c    Check
		size int
		name string
		sum  []byte // of data, as Append writes it
	}{
		{CheckNone, 0, "none", nil},
		{CheckCRC32, 4, "CRC32", binary.LittleEndian.AppendUint32(nil, 0xcbf43926)},
		{CheckCRC64, 8, "CRC64", binary.LittleEndian.AppendUint64(nil, 0x995dc9bbdf1939fa)},
		{CheckSHA256, 32, "SHA-256", nil},
	} {
		got := tt.c.Append([]byte{1}, data)
		if tt.c.Size() != tt.size || tt.c.String() != tt.name || len(got) != 1+tt.size {
			t.Errorf("Check %#x: Size() = %d, String() = %q, Append = %d bytes; want %d, %q, %d",
				byte(tt.c), tt.c.Size(), tt.c, len(got), tt.size, tt.name, 1+tt.size)
		}
		if tt.sum != nil && !bytes.Equal(got[1:], tt.sum) {
			t.Errorf("%s.Append(123456789) = % x, want % x", tt.c, got[1:], tt.sum)
		}
	}
	if got := Check(0x0d).Size(); got != 64 {
		t.Errorf("Check(0x0d).Size() = %d, want 64", got)
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	// What xz(1) writes by default.
	want := []byte{0xfd, '7', 'z', 'X', 'Z', 0, 0, 0x04, 0xe6, 0xd6, 0xb4, 0x46}
	if got := AppendHeader(nil, CheckCRC64); !bytes.Equal(got, want) {
		t.Errorf("AppendHeader(CRC64) = % x, want % x", got, want)
	}
	for _, c := range []Check{CheckNone, CheckCRC32, CheckCRC64, CheckSHA256} {
		h := AppendHeader(nil, c)
		if got, err := ParseHeader(h); got != c || err != nil || len(h) != HeaderSize {
			t.Errorf("ParseHeader(AppendHeader(%s)) = %s, %v (%d bytes); want %s, nil (%d bytes)", c, got, err, len(h), c, HeaderSize)
		}
	}
}

func TestFooterRoundTrip(t *testing.T) {
	for _, size := range []int64{8, 12, 1 << 20, 1 << 34} {
		f := AppendFooter(nil, CheckSHA256, size)
		c, got, err := ParseFooter(f)
		if c != CheckSHA256 || got != size || err != nil || len(f) != FooterSize {
			t.Errorf("ParseFooter(AppendFooter(SHA-256, %d)) = %s, %d, %v; want SHA-256, %d, nil", size, c, got, err, size)
		}
	}
}

// withCRC sets the CRC32 of b[from:to] at b[at:].
func withCRC(b []byte, at, from, to int) []byte {
	binary.LittleEndian.PutUint32(b[at:], crc32.ChecksumIEEE(b[from:to]))
	return b
}

// edit returns a copy of b with b[at] set to v.
func edit(b []byte, at int, v byte) []byte {
	b = bytes.Clone(b)
	b[at] = v
	return b
}

func TestHeaderFooterHostile(t *testing.T) {
	h, f := AppendHeader(nil, CheckCRC64), AppendFooter(nil, CheckCRC32, 8)
	header := func(b []byte) error { _, err := ParseHeader(b); return err }
	footer := func(b []byte) error { _, _, err := ParseFooter(b); return err }
	for _, tt := range []struct {
		name  string
		parse func([]byte) error
		b     []byte
		want  error
	}{
		{"header truncated", header, h[:HeaderSize-1], ErrTruncated},
		{"header magic", header, edit(h, 1, 'x'), ErrFormat},
		{"header CRC32", header, edit(h, 9, h[9]^1), ErrChecksum},
		{"header reserved flags", header, withCRC(edit(h, 6, 1), 8, 6, 8), ErrFormat},
		{"header reserved check bits", header, withCRC(edit(h, 7, 0x14), 8, 6, 8), ErrFormat},
		{"header unknown check", header, withCRC(edit(h, 7, 0x02), 8, 6, 8), ErrFormat},
		{"footer truncated", footer, f[1:], ErrTruncated},
		{"footer magic", footer, edit(f, 11, 'y'), ErrFormat},
		{"footer CRC32", footer, edit(f, 4, f[4]+1), ErrChecksum},
		{"footer reserved flags", footer, withCRC(edit(f, 8, 0x80), 0, 4, 10), ErrFormat},
		{"footer unknown check", footer, withCRC(edit(f, 9, 0x0f), 0, 4, 10), ErrFormat},
	} {
		if err := tt.parse(tt.b); !errors.Is(err, tt.want) {
			t.Errorf("%s: parsing % x = %v, want %v", tt.name, tt.b, err, tt.want)
		}
	}
}
