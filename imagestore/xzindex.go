package imagestore

import (
	"io"

	"allium/internal/xzframe"
)

// Reading an .xz file's index from its end, so that its blocks can be
// decoded in parallel (xzparallel.go). The framing (stream header,
// index, footer; the diagram is in internal/xzframe) is parsed by
// xzframe, which checks its CRC32s and bounds.
//
// The index is trusted for nothing but where to cut: every block is
// decoded as a one-block stream whose index is that block's record, so
// the decoder checks the record's sizes, the block header's and the
// block's check against what the block really holds.

// xzMaxParallelBlock is the largest block decoded in parallel: each
// block in flight is held whole. mkimage writes 4 MiB blocks.
const xzMaxParallelBlock = 32 << 20

// xzStream is what a single-stream .xz file's index says.
type xzStream struct {
	header []byte        // the stream header, which begins every one-block stream
	check  xzframe.Check // what ends every block
	blocks []xzBlock
}

// xzBlock is one block: where it lies, and its index record.
type xzBlock struct {
	offset int64 // in the file
	xzframe.Record
}

// readXZIndex reads the stream header, footer and index of the .xz file
// ra of size bytes. It returns nil when the file is not one stream whose
// index accounts for every byte before it, with blocks small enough to
// hold whole: such files (concatenated streams, stream padding, huge
// blocks, and every truncated or corrupt end) are left to the streaming
// decoder, which explains what is wrong with them.
func readXZIndex(ra io.ReaderAt, size int64) *xzStream {
	if size < xzframe.HeaderSize+xzframe.FooterSize+xzframe.MinIndexSize {
		return nil
	}
	head, foot := make([]byte, xzframe.HeaderSize), make([]byte, xzframe.FooterSize)
	if _, err := ra.ReadAt(head, 0); err != nil {
		return nil
	}
	if _, err := ra.ReadAt(foot, size-xzframe.FooterSize); err != nil {
		return nil
	}
	check, err := xzframe.ParseHeader(head)
	if err != nil {
		return nil
	}
	footCheck, indexSize, err := xzframe.ParseFooter(foot)
	if err != nil || footCheck != check {
		return nil
	}
	indexAt := size - xzframe.FooterSize - indexSize
	if indexAt < xzframe.HeaderSize {
		return nil
	}
	index := make([]byte, indexSize)
	if _, err := ra.ReadAt(index, indexAt); err != nil {
		return nil
	}
	records, err := xzframe.ParseIndex(index)
	if err != nil {
		return nil
	}
	blocks := make([]xzBlock, len(records))
	offset := int64(xzframe.HeaderSize)
	for i, r := range records {
		if r.Uncompressed > xzMaxParallelBlock || r.Unpadded > indexAt || offset > indexAt {
			return nil
		}
		blocks[i] = xzBlock{offset: offset, Record: r}
		offset += r.Padded()
	}
	if offset != indexAt {
		return nil
	}
	return &xzStream{header: head, check: check, blocks: blocks}
}

// oneBlockTrailer is the index and footer of a stream of block b
// alone: the stream header, b and this are what the decoder reads to
// decode and check b by itself.
func (s *xzStream) oneBlockTrailer(b xzBlock) []byte {
	return xzframe.AppendTrailer(nil, s.check, []xzframe.Record{b.Record})
}
