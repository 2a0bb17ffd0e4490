package main

import (
	"cmp"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/mholt/archives"
)

// The default block sizes (--block-size 0). The node decodes xz, the
// slowest, a block per core: 1 MiB blocks give a 5 MB app several (4 MiB
// gave two, and no speed-up), at no measurable cost in size (the ~200 MB
// rootfs of imagestore's BenchmarkUnpackThroughput: 73.51 MB in 1 MiB
// blocks, 73.52 MB in 4 MiB). zstd frames are decoded one after another,
// so they keep the larger window.
const (
	xzBlockSize   = 1 << 20
	zstdFrameSize = 4 << 20
)

// packCompressors are the image compressions: every one mholt/archives
// identifies on the node. xz and zstd cut the tar into blocks of
// blockSize bytes (0: their default) compressed independently (xz
// blocks of one stream, zstd frames), so a reader can decompress them
// in parallel; they are
// also compressed in parallel here. Each writes the same bytes for the
// same input.
var packCompressors = map[string]func(w io.Writer, blockSize int) (io.WriteCloser, error){
	"none": func(w io.Writer, _ int) (io.WriteCloser, error) { return nopCloser{w}, nil },
	"gzip": func(w io.Writer, _ int) (io.WriteCloser, error) { return compressors["gzip"](w) },
	"xz": func(w io.Writer, blockSize int) (io.WriteCloser, error) {
		return newXZWriter(w, cmp.Or(blockSize, xzBlockSize))
	},
	"zstd": func(w io.Writer, blockSize int) (io.WriteCloser, error) {
		return newZstdWriter(w, cmp.Or(blockSize, zstdFrameSize))
	},
	"bzip2": func(w io.Writer, _ int) (io.WriteCloser, error) {
		return archives.Bz2{CompressionLevel: 9}.OpenWriter(w)
	},
	"lz4": func(w io.Writer, _ int) (io.WriteCloser, error) { return archives.Lz4{}.OpenWriter(w) },
}

// packExtensions map output names to compressions, longest first.
var packExtensions = []struct{ ext, method string }{
	{".tar.xz", "xz"}, {".txz", "xz"},
	{".tar.gz", "gzip"}, {".tgz", "gzip"},
	{".tar.zst", "zstd"}, {".tzst", "zstd"},
	{".tar.bz2", "bzip2"}, {".tbz2", "bzip2"},
	{".tar.lz4", "lz4"},
	{".tar", "none"},
}

// compressionOf splits an output name into its base and the compression
// its extension names: "app.tar.zst" is ("app", "zstd", true).
func compressionOf(name string) (base, method string, ok bool) {
	for _, e := range packExtensions {
		if b, found := strings.CutSuffix(name, e.ext); found && b != "" {
			return b, e.method, true
		}
	}
	return name, "", false
}

// packCompressionNames lists the compressions for help and errors.
func packCompressionNames() []string {
	var names []string
	for n := range packCompressors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// extensionNames lists the output extensions pack recognizes.
func extensionNames() string {
	var exts []string
	for _, e := range packExtensions {
		exts = append(exts, e.ext)
	}
	return strings.Join(exts, " ")
}

// newZstdWriter writes one zstd frame per block. Each frame header holds
// the block's uncompressed size, and frames may be concatenated (RFC
// 8878, section 3.1), so `zstd -d` reads the whole as one stream.
// klauspost/compress's streaming Encoder writes a single frame, so the
// frames are cut here and each made with EncodeAll.
func newZstdWriter(w io.Writer, blockSize int) (io.WriteCloser, error) {
	workers := runtime.GOMAXPROCS(0)
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression),
		zstd.WithEncoderConcurrency(workers), zstd.WithWindowSize(zstdWindow(blockSize)))
	if err != nil {
		return nil, err
	}
	encode := func(b []byte) encodedBlock { return encodedBlock{data: enc.EncodeAll(b, nil)} }
	bw := newBlockWriter(w, blockSize, workers, encode)
	bw.finish = func(io.Writer, []encodedBlock) error { return enc.Close() }
	return bw, nil
}

// zstdWindow is the smallest valid window that holds a whole block: no
// match reaches past it, and a larger one only costs the reader memory.
func zstdWindow(blockSize int) int {
	w := zstd.MinWindowSize
	for w < blockSize && w < zstd.MaxWindowSize {
		w *= 2
	}
	return w
}

// encodedBlock is one compressed block and what an index needs of it.
type encodedBlock struct {
	data []byte
	// unpadded and size are an xz index record: the block's size without
	// its padding, and its uncompressed size.
	unpadded, size int64
	err            error
}

// blockWriter cuts what is written to it into blocks of size bytes,
// compresses up to workers of them at once with encode, and writes the
// results in order, so the output does not depend on the parallelism.
//
//	Write ──> buf (size bytes) ──> go encode ──> pending (FIFO, ≤ workers) ──> out
type blockWriter struct {
	out     io.Writer
	size    int
	workers int
	encode  func([]byte) encodedBlock
	// finish writes what follows the blocks (an xz index and footer),
	// given every block in order.
	finish func(io.Writer, []encodedBlock) error

	buf     []byte
	pending []chan encodedBlock
	done    []encodedBlock // written, without their data
	err     error
}

func newBlockWriter(out io.Writer, size, workers int, encode func([]byte) encodedBlock) *blockWriter {
	return &blockWriter{out: out, size: size, workers: max(workers, 1), encode: encode,
		buf: make([]byte, 0, size)}
}

func (b *blockWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 && b.err == nil {
		k := min(len(p), b.size-len(b.buf))
		b.buf = append(b.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(b.buf) == b.size {
			b.startBlock()
		}
	}
	return n, b.err
}

// startBlock hands the buffer to a new encoder goroutine, and writes the
// oldest result once workers are busy.
func (b *blockWriter) startBlock() {
	block := b.buf
	b.buf = make([]byte, 0, b.size)
	ch := make(chan encodedBlock, 1)
	go func() { ch <- b.encode(block) }()
	b.pending = append(b.pending, ch)
	for len(b.pending) > b.workers {
		b.writeOldest()
	}
}

func (b *blockWriter) writeOldest() {
	r := <-b.pending[0]
	b.pending = b.pending[1:]
	if b.err == nil {
		b.err = r.err
	}
	if b.err == nil {
		_, b.err = b.out.Write(r.data)
		r.data = nil
		b.done = append(b.done, r)
	}
}

// Close compresses the last, partial block, writes every pending block
// and then the trailer.
func (b *blockWriter) Close() error {
	if len(b.buf) > 0 || len(b.done)+len(b.pending) == 0 {
		b.startBlock()
	}
	for len(b.pending) > 0 {
		b.writeOldest()
	}
	if b.err == nil && b.finish != nil {
		b.err = b.finish(b.out, b.done)
	}
	if b.err != nil {
		return fmt.Errorf("compress: %w", b.err)
	}
	return nil
}

// blocks is how many blocks were written.
func (b *blockWriter) blocks() int { return len(b.done) }
