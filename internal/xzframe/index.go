package xzframe

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Record is one block's index record.
type Record struct {
	// Unpadded is the block's size in the file without its padding:
	// block header, compressed data and check. At least 5 in a parsed
	// index.
	Unpadded int64
	// Uncompressed is the size of the block's data once decoded.
	Uncompressed int64
}

// Padded is the block's size in the file: Unpadded rounded up to a
// multiple of four.
func (r Record) Padded() int64 { return (r.Unpadded + 3) &^ 3 }

// MinIndexSize is the size of the smallest index, of no blocks:
// indicator, count, padding and CRC32.
const MinIndexSize = 8

// maxUnpadded is the largest unpadded size the format allows: the
// largest multibyte integer with room for the padding.
const maxUnpadded = (1<<63 - 1) &^ 3

// AppendIndex appends the index of records: the indicator, the count,
// the records, padding to four bytes and the CRC32.
func AppendIndex(b []byte, records []Record) []byte {
	start := len(b)
	b = AppendVarint(append(b, 0), uint64(len(records)))
	for _, r := range records {
		b = AppendVarint(AppendVarint(b, uint64(r.Unpadded)), uint64(r.Uncompressed))
	}
	for (len(b)-start)%4 != 0 {
		b = append(b, 0)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b[start:]))
}

// AppendTrailer appends what follows a stream's blocks: the index of
// records and the stream footer, for check c.
func AppendTrailer(b []byte, c Check, records []Record) []byte {
	start := len(b)
	b = AppendIndex(b, records)
	return AppendFooter(b, c, int64(len(b)-start))
}

// ParseIndex decodes index, the whole index field (its size is the
// footer's), and returns its records. It checks the CRC32, the
// indicator, every multibyte integer, the records' bounds and the
// padding; it allocates no more records than index could hold.
func ParseIndex(index []byte) ([]Record, error) {
	if len(index) < MinIndexSize || len(index)%4 != 0 {
		return nil, fmt.Errorf("xz index: %d bytes, want a multiple of 4 from %d: %w", len(index), MinIndexSize, ErrFormat)
	}
	body := index[:len(index)-4]
	if binary.LittleEndian.Uint32(index[len(body):]) != crc32.ChecksumIEEE(body) {
		return nil, fmt.Errorf("xz index: %w", ErrChecksum)
	}
	if body[0] != 0 {
		return nil, fmt.Errorf("xz index: indicator %#x, want 0: %w", body[0], ErrFormat)
	}
	n, k, err := Varint(body[1:])
	if err != nil {
		return nil, fmt.Errorf("xz index: count: %w", err)
	}
	pos := 1 + k
	if n > uint64(len(body)-pos)/2 { // a record takes two bytes or more
		return nil, fmt.Errorf("xz index: %d records in %d bytes: %w", n, len(index), ErrFormat)
	}
	records := make([]Record, n)
	for i := range records {
		var sizes [2]uint64
		for j := range sizes {
			if sizes[j], k, err = Varint(body[pos:]); err != nil {
				return nil, fmt.Errorf("xz index: record %d: %w", i+1, err)
			}
			pos += k
		}
		if sizes[0] < 5 || sizes[0] > maxUnpadded {
			return nil, fmt.Errorf("xz index: record %d: unpadded size %d: %w", i+1, sizes[0], ErrFormat)
		}
		records[i] = Record{Unpadded: int64(sizes[0]), Uncompressed: int64(sizes[1])}
	}
	if len(body)-pos > 3 {
		return nil, fmt.Errorf("xz index: %d bytes after the records: %w", len(body)-pos, ErrFormat)
	}
	for _, c := range body[pos:] {
		if c != 0 {
			return nil, fmt.Errorf("xz index: padding is not zero: %w", ErrFormat)
		}
	}
	return records, nil
}
