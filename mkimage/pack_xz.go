package main

// An xz stream of independent blocks, each block header carrying the
// block's compressed and uncompressed sizes (the .xz file format,
// https://tukaani.org/xz/xz-file-format.txt):
//
//	+---------------+---------------------------------------+-----+-------+--------+
//	| stream header | block header | LZMA2 data | pad | CRC64 | ... | index | footer |
//	| 12 B          | sizes, filter| ≤ blockSize of input     |     | sizes | 12 B   |
//	+---------------+---------------------------------------+-----+-------+--------+
//
// This is what `xz -T0` writes, and what its threaded decoder (xz 5.4 and
// later) decodes in parallel; a Go reader can likewise cut the stream at
// the block headers without decoding. ulikunitz/xz's Writer can cut
// blocks (WriterConfig.BlockSize) but writes each block header before its
// data, so without the sizes; so the container is written here and only
// the LZMA2 data comes from ulikunitz/xz/lzma.

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"hash/crc64"
	"io"
	"runtime"

	"github.com/ulikunitz/xz/lzma"
)

const (
	xzCheckCRC64  = 0x04 // stream flags: the check of each block is CRC64
	xzFilterLZMA2 = 0x21
	// xzMaxDict caps the dictionary at xz -6's: a reader allocates it,
	// and the node's decoder refuses more than 64 MiB.
	xzMaxDict = 8 << 20
)

var (
	xzMagic    = []byte{0xfd, '7', 'z', 'X', 'Z', 0}
	xzFooter   = []byte{'Y', 'Z'}
	crc64Table = crc64.MakeTable(crc64.ECMA)
)

func newXZWriter(w io.Writer, blockSize int) (io.WriteCloser, error) {
	if _, err := w.Write(xzStreamHeader()); err != nil {
		return nil, err
	}
	dict := min(max(blockSize, lzma.MinDictCap), xzMaxDict)
	encode := func(b []byte) encodedBlock { return xzBlock(b, dict) }
	bw := newBlockWriter(w, blockSize, runtime.GOMAXPROCS(0), encode)
	bw.finish = xzTrailer
	return bw, nil
}

// xzFlags are the stream flags of the header and footer.
func xzFlags() []byte { return []byte{0, xzCheckCRC64} }

func xzStreamHeader() []byte {
	h := append(append([]byte{}, xzMagic...), xzFlags()...)
	return binary.LittleEndian.AppendUint32(h, crc32.ChecksumIEEE(xzFlags()))
}

// xzBlock compresses one block: header with sizes, LZMA2 data, padding
// to four bytes, CRC64 of the input.
func xzBlock(in []byte, dict int) encodedBlock {
	var data bytes.Buffer
	zw, err := lzma.Writer2Config{DictCap: dict}.NewWriter2(&data)
	if err == nil {
		_, err = zw.Write(in)
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		return encodedBlock{err: err}
	}
	out := xzBlockHeader(int64(data.Len()), int64(len(in)), dict)
	unpadded := int64(len(out) + data.Len() + 8)
	out = append(out, data.Bytes()...)
	out = append(out, make([]byte, pad4(data.Len()))...)
	out = binary.LittleEndian.AppendUint64(out, crc64.Checksum(in, crc64Table))
	return encodedBlock{data: out, unpadded: unpadded, size: int64(len(in))}
}

// xzBlockHeader is a block header with both sizes and one LZMA2 filter.
func xzBlockHeader(compressed, size int64, dict int) []byte {
	const flagsOneFilterBothSizes = 0x00 | 0x40 | 0x80
	h := []byte{0, flagsOneFilterBothSizes}
	h = xzVarint(h, uint64(compressed))
	h = xzVarint(h, uint64(size))
	h = append(h, xzFilterLZMA2, 1, lzma2DictByte(dict))
	h = append(h, make([]byte, pad4(len(h)+4))...)
	h[0] = byte((len(h)+4)/4 - 1) // the header's size, CRC32 included
	return binary.LittleEndian.AppendUint32(h, crc32.ChecksumIEEE(h))
}

// lzma2DictByte encodes the smallest LZMA2 dictionary size of at least
// n bytes: 2 or 3 times a power of two (the format's section 5.3.1).
func lzma2DictByte(n int) byte {
	for b := 0; b < 40; b++ {
		if (2|b&1)<<(b/2+11) >= n {
			return byte(b)
		}
	}
	return 40
}

// xzTrailer writes the index (a record per block) and the stream footer.
func xzTrailer(w io.Writer, blocks []encodedBlock) error {
	idx := []byte{0}
	idx = xzVarint(idx, uint64(len(blocks)))
	for _, b := range blocks {
		idx = xzVarint(xzVarint(idx, uint64(b.unpadded)), uint64(b.size))
	}
	idx = append(idx, make([]byte, pad4(len(idx)))...)
	idx = binary.LittleEndian.AppendUint32(idx, crc32.ChecksumIEEE(idx))
	f := binary.LittleEndian.AppendUint32(nil, uint32(len(idx)/4-1)) // backward size
	f = append(f, xzFlags()...)
	out := binary.LittleEndian.AppendUint32(idx, crc32.ChecksumIEEE(f))
	out = append(append(out, f...), xzFooter...)
	_, err := w.Write(out)
	return err
}

// xzVarint appends x in the format's multibyte integer encoding: seven
// bits a byte, least significant first.
func xzVarint(b []byte, x uint64) []byte {
	for x >= 0x80 {
		b = append(b, byte(x)|0x80)
		x >>= 7
	}
	return append(b, byte(x))
}
