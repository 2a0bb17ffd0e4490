package xzframe

import (
	"bytes"
	"errors"
	"testing"
)

func TestVarintRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		x    uint64
		want []byte
	}{
		{0, []byte{0}},
		{1, []byte{1}},
		{127, []byte{0x7f}},
		{128, []byte{0x80, 0x01}},
		{300, []byte{0xac, 0x02}},
		{1<<63 - 1, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
	} {
		b := AppendVarint([]byte{0xaa}, tt.x)
		if !bytes.Equal(b[1:], tt.want) {
			t.Errorf("AppendVarint(%d) = % x, want % x", tt.x, b[1:], tt.want)
		}
		x, n, err := Varint(append(b[1:], 0xee))
		if x != tt.x || n != len(tt.want) || err != nil {
			t.Errorf("Varint(% x) = %d, %d, %v; want %d, %d, nil", b[1:], x, n, err, tt.x, len(tt.want))
		}
	}
}

// Varint refuses what the format's decoders must refuse.
func TestVarintHostile(t *testing.T) {
	for _, tt := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"cut after a continuation", []byte{0x80}, ErrTruncated},
		{"cut after eight bytes", bytes.Repeat([]byte{0xff}, 8), ErrTruncated},
		{"not shortest: 0 as two bytes", []byte{0x80, 0x00}, ErrFormat},
		{"not shortest: 1 as three bytes", []byte{0x81, 0x80, 0x00}, ErrFormat},
		{"nine bytes and more", bytes.Repeat([]byte{0xff}, 9), ErrFormat},
		{"ten bytes: 1<<63", append(bytes.Repeat([]byte{0x80}, 9), 0x01), ErrFormat},
		{"ten bytes: max uint64", append(bytes.Repeat([]byte{0xff}, 9), 0x01), ErrFormat},
	} {
		if x, n, err := Varint(tt.b); !errors.Is(err, tt.want) {
			t.Errorf("%s: Varint(% x) = %d, %d, %v; want %v", tt.name, tt.b, x, n, err, tt.want)
		}
	}
}

// Whatever Varint accepts, AppendVarint encodes back to the same bytes:
// there is one encoding of each value.
func FuzzVarint(f *testing.F) {
	f.Add([]byte{0x80, 0x01})
	f.Add([]byte{0x80, 0x00})
	f.Add(bytes.Repeat([]byte{0xff}, 10))
	f.Fuzz(func(t *testing.T, b []byte) {
		x, n, err := Varint(b)
		if err != nil {
			return
		}
		if got := AppendVarint(nil, x); !bytes.Equal(got, b[:n]) {
			t.Errorf("Varint(% x) = %d, %d; AppendVarint(%d) = % x", b, x, n, x, got)
		}
	})
}
