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
// data, so without the sizes; so the block headers are written here,
// the stream header, index and footer by internal/xzframe, and only the
// LZMA2 data comes from ulikunitz/xz/lzma.

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"runtime"

	"github.com/ulikunitz/xz/lzma"

	"allium/internal/xzframe"
)

const (
	xzCheck       = xzframe.CheckCRC64 // what ends each block
	xzFilterLZMA2 = 0x21
	// xzMaxDict caps the dictionary at xz -6's: a reader allocates it,
	// and the node's decoder refuses more than 64 MiB.
	xzMaxDict = 8 << 20
)

func newXZWriter(w io.Writer, blockSize int) (io.WriteCloser, error) {
	if _, err := w.Write(xzframe.AppendHeader(nil, xzCheck)); err != nil {
		return nil, err
	}
	dict := min(max(blockSize, lzma.MinDictCap), xzMaxDict)
	encode := func(b []byte) encodedBlock { return xzBlock(b, dict) }
	bw := newBlockWriter(w, blockSize, runtime.GOMAXPROCS(0), encode)
	bw.finish = xzTrailer
	return bw, nil
}

// xzBlock compresses one block: header with sizes, LZMA2 data, padding
// to four bytes, check (CRC64) of the input.
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
	unpadded := int64(len(out) + data.Len() + xzCheck.Size())
	out = append(out, data.Bytes()...)
	out = append(out, make([]byte, pad4(data.Len()))...)
	out = xzCheck.Append(out, in)
	return encodedBlock{data: out, unpadded: unpadded, size: int64(len(in))}
}

// xzBlockHeader is a block header with both sizes and one LZMA2 filter.
func xzBlockHeader(compressed, size int64, dict int) []byte {
	const flagsOneFilterBothSizes = 0x00 | 0x40 | 0x80
	h := []byte{0, flagsOneFilterBothSizes}
	h = xzframe.AppendVarint(h, uint64(compressed))
	h = xzframe.AppendVarint(h, uint64(size))
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
	records := make([]xzframe.Record, len(blocks))
	for i, b := range blocks {
		records[i] = xzframe.Record{Unpadded: b.unpadded, Uncompressed: b.size}
	}
	_, err := w.Write(xzframe.AppendTrailer(nil, xzCheck, records))
	return err
}
