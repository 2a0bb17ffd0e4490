package xzframe

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"sync"
)

// Check is the ID of the integrity check that ends every block of a
// stream, from the stream flags.
type Check byte

// The checks this package knows; ParseHeader and ParseFooter refuse
// the others.
const (
	CheckNone   Check = 0x00
	CheckCRC32  Check = 0x01
	CheckCRC64  Check = 0x04
	CheckSHA256 Check = 0x0a
)

var crc64ECMA = sync.OnceValue(func() *crc64.Table { return crc64.MakeTable(crc64.ECMA) })

func (c Check) known() bool {
	return c == CheckNone || c == CheckCRC32 || c == CheckCRC64 || c == CheckSHA256
}

// Size is the check's size in bytes, by its ID, for the 16 IDs the
// format defines (section 3.4): 0, 4, 8, 16, 32 or 64.
func (c Check) Size() int {
	if c == 0 || c > 0x0f {
		return 0
	}
	return 4 << ((c - 1) / 3)
}

// String names the check: "none", "CRC32", "CRC64", "SHA-256".
func (c Check) String() string {
	switch c {
	case CheckNone:
		return "none"
	case CheckCRC32:
		return "CRC32"
	case CheckCRC64:
		return "CRC64"
	case CheckSHA256:
		return "SHA-256"
	}
	return fmt.Sprintf("check ID %#x", byte(c))
}

// Append appends the check of data to b, as it ends a block: CRC32 and
// CRC64 (ECMA) little-endian, SHA-256 as is. For none, and for a check
// this package does not know, it appends nothing.
func (c Check) Append(b, data []byte) []byte {
	switch c {
	case CheckCRC32:
		return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(data))
	case CheckCRC64:
		return binary.LittleEndian.AppendUint64(b, crc64.Checksum(data, crc64ECMA()))
	case CheckSHA256:
		sum := sha256.Sum256(data)
		return append(b, sum[:]...)
	}
	return b
}
