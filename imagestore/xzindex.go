package imagestore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"hash/crc32"
	"hash/crc64"
	"io"
)

// Reading an .xz file's index from its end, so that its blocks can be
// decoded in parallel (xzparallel.go). The .xz format
// (https://tukaani.org/xz/xz-file-format.txt, sections 2 and 4):
//
//	+-----------+---------+-----+---------+-------------------------------------+--------------+
//	| stream    | block 1 | ... | block n | index: 0x00, n, n × (unpadded size, | stream footer|
//	| header 12 |         |     |         | uncompressed size), pad, CRC32      | 12           |
//	+-----------+---------+-----+---------+-------------------------------------+--------------+
//	each block: header | compressed data | padding to 4 | check (0, 4, 8 or 32 bytes)
//	footer: CRC32 | backward size (the index's, /4 - 1) | stream flags | "YZ"
//
// The index is trusted for nothing but where to cut: every block is
// decoded as a one-block stream whose index is that block's record, so
// the decoder checks the record's sizes, the block header's and the
// block's check against what the block really holds.

const (
	xzHeaderSize = 12
	xzFooterSize = 12
	// xzMaxParallelBlock is the largest block decoded in parallel: each
	// block in flight is held whole. mkimage writes 4 MiB blocks.
	xzMaxParallelBlock = 32 << 20
)

var (
	xzHeaderMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0}
	xzFooterMagic = []byte{'Y', 'Z'}
)

// xzChecks names the integrity checks a block may carry, by the check
// ID of the stream flags, with the check's size.
var xzChecks = map[byte]struct {
	name string
	size int64
}{0x00: {"no", 0}, 0x01: {"CRC32", 4}, 0x04: {"CRC64", 8}, 0x0a: {"SHA-256", 32}}

// xzCheckMatches reports whether stored is the check of data, for the
// check ID id.
func xzCheckMatches(id byte, data, stored []byte) bool {
	var sum []byte
	switch id {
	case 0x01:
		sum = binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(data))
	case 0x04:
		sum = binary.LittleEndian.AppendUint64(nil, crc64.Checksum(data, crc64ECMA))
	case 0x0a:
		h := sha256.Sum256(data)
		sum = h[:]
	}
	return bytes.Equal(sum, stored)
}

var crc64ECMA = crc64.MakeTable(crc64.ECMA)

// xzStream is what a single-stream .xz file's index says.
type xzStream struct {
	header []byte // the stream header, which begins every one-block stream
	check  string // the check's name ("CRC64")
	blocks []xzBlock
}

// xzBlock is one block: where it lies, and its index record.
type xzBlock struct {
	offset   int64 // in the file
	unpadded int64 // header, compressed data and check, without padding
	size     int64 // uncompressed
}

// length is the block's size in the file, padding included (the check's
// size is a multiple of four).
func (b xzBlock) length() int64 { return (b.unpadded + 3) &^ 3 }

// readXZIndex reads the stream header, footer and index of the .xz file
// ra of size bytes. It returns nil when the file is not one stream whose
// index accounts for every byte before it, with blocks small enough to
// hold whole: such files (concatenated streams, stream padding, huge
// blocks, and every truncated or corrupt end) are left to the streaming
// decoder, which explains what is wrong with them.
func readXZIndex(ra io.ReaderAt, size int64) *xzStream {
	if size < xzHeaderSize+xzFooterSize+8 {
		return nil
	}
	head, foot := make([]byte, xzHeaderSize), make([]byte, xzFooterSize)
	if _, err := ra.ReadAt(head, 0); err != nil {
		return nil
	}
	if _, err := ra.ReadAt(foot, size-xzFooterSize); err != nil {
		return nil
	}
	flags, ok := xzHeaderFlags(head)
	if !ok || !bytes.Equal(foot[10:], xzFooterMagic) || !bytes.Equal(foot[8:10], flags) ||
		binary.LittleEndian.Uint32(foot) != crc32.ChecksumIEEE(foot[4:10]) {
		return nil
	}
	indexSize := (int64(binary.LittleEndian.Uint32(foot[4:])) + 1) * 4
	indexAt := size - xzFooterSize - indexSize
	if indexAt < xzHeaderSize {
		return nil
	}
	index := make([]byte, indexSize)
	if _, err := ra.ReadAt(index, indexAt); err != nil {
		return nil
	}
	blocks, ok := parseXZIndex(index)
	if !ok {
		return nil
	}
	offset := int64(xzHeaderSize)
	for i := range blocks {
		if blocks[i].size > xzMaxParallelBlock || blocks[i].unpadded > indexAt {
			return nil
		}
		blocks[i].offset = offset
		offset += blocks[i].length()
	}
	if offset != indexAt {
		return nil
	}
	return &xzStream{header: head, check: xzChecks[flags[1]].name, blocks: blocks}
}

// xzHeaderFlags checks a stream header and returns its stream flags.
func xzHeaderFlags(h []byte) ([]byte, bool) {
	flags := h[6:8]
	_, known := xzChecks[flags[1]]
	ok := bytes.Equal(h[:6], xzHeaderMagic) && flags[0] == 0 && known &&
		binary.LittleEndian.Uint32(h[8:]) == crc32.ChecksumIEEE(flags)
	return flags, ok
}

// parseXZIndex decodes an index field whose CRC32 matches: its records,
// without offsets.
func parseXZIndex(index []byte) ([]xzBlock, bool) {
	body := index[:len(index)-4]
	if index[0] != 0 || binary.LittleEndian.Uint32(index[len(index)-4:]) != crc32.ChecksumIEEE(body) {
		return nil, false
	}
	r := bytes.NewReader(body[1:])
	n, err := binary.ReadUvarint(r)
	if err != nil || n > uint64(len(body))/2 { // a record takes two bytes or more
		return nil, false
	}
	blocks := make([]xzBlock, n)
	for i := range blocks {
		unpadded, err1 := binary.ReadUvarint(r)
		size, err2 := binary.ReadUvarint(r)
		if err1 != nil || err2 != nil || unpadded < 5 || unpadded > 1<<62 || size > 1<<62 {
			return nil, false
		}
		blocks[i] = xzBlock{unpadded: int64(unpadded), size: int64(size)}
	}
	if r.Len() > 3 {
		return nil, false
	}
	for r.Len() > 0 { // index padding: zeros
		if b, _ := r.ReadByte(); b != 0 {
			return nil, false
		}
	}
	return blocks, true
}

// oneBlockTrailer is the index and footer of a stream of block b
// alone: the stream header, b and this are what the decoder reads to
// decode and check b by itself.
func (s *xzStream) oneBlockTrailer(b xzBlock) []byte {
	return xzTrailer(s.header[6:8], []xzBlock{b})
}

// xzTrailer encodes the index of blocks and the stream footer with the
// stream flags.
func xzTrailer(flags []byte, blocks []xzBlock) []byte {
	index := binary.AppendUvarint([]byte{0}, uint64(len(blocks)))
	for _, b := range blocks {
		index = binary.AppendUvarint(index, uint64(b.unpadded))
		index = binary.AppendUvarint(index, uint64(b.size))
	}
	for len(index)%4 != 0 {
		index = append(index, 0)
	}
	index = binary.LittleEndian.AppendUint32(index, crc32.ChecksumIEEE(index))
	foot := binary.LittleEndian.AppendUint32(nil, uint32(len(index)/4-1))
	foot = append(foot, flags...)
	out := binary.LittleEndian.AppendUint32(index, crc32.ChecksumIEEE(foot))
	return append(append(out, foot...), xzFooterMagic...)
}
