package xzframe

import "fmt"

// MaxVarintLen is the length of the longest multibyte integer: 9 bytes
// of 7 bits, so values below 1<<63.
const MaxVarintLen = 9

// AppendVarint appends x in the format's multibyte integer encoding
// (section 1.2): seven bits a byte, least significant first, the high
// bit set on every byte but the last. x must be below 1<<63: a larger x
// takes 10 bytes, which Varint refuses.
func AppendVarint(b []byte, x uint64) []byte {
	for x >= 0x80 {
		b = append(b, byte(x)|0x80)
		x >>= 7
	}
	return append(b, byte(x))
}

// Varint decodes the multibyte integer at the start of b and returns it
// with its length. It refuses one that b cuts short, one longer than
// MaxVarintLen, and one not in its shortest form (a last byte of zero
// after the first), as the format's decoders must.
func Varint(b []byte) (uint64, int, error) {
	var x uint64
	for i := 0; i < MaxVarintLen; i++ {
		if i == len(b) {
			return 0, 0, fmt.Errorf("xz multibyte integer: %w", ErrTruncated)
		}
		c := b[i]
		if c == 0 && i > 0 {
			return 0, 0, fmt.Errorf("xz multibyte integer: not in its shortest form: %w", ErrFormat)
		}
		x |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return x, i + 1, nil
		}
	}
	return 0, 0, fmt.Errorf("xz multibyte integer: longer than %d bytes: %w", MaxVarintLen, ErrFormat)
}
