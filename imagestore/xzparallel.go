package imagestore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	fastxz "github.com/mikelolasagasti/xz"

	"allium/internal/xzframe"
)

// xzParallel decodes the blocks of a multi-block .xz file (as mkimage
// and `xz -T0` write them) on several goroutines and reads their output
// in order. Each block is decoded as a stream of its own (xzindex.go),
// by the same decoder and with the same 64 MiB dictionary cap as the
// streaming path, which checks its sizes and its CRC32, CRC64 or
// SHA-256. A block's output goes on in chunks as it is decoded, so
// that the first writes need not wait for a whole block.
//
//	dispatch ─ for each block, in order: take an idle decoder (≤ workers busy)
//	   │                                  └─> go decode ─> chunks ─┐
//	   └─> order: [block's chunk chan] × window, in file order ────┴─> Read (the pipe's goroutine)
//
// At most window+1 blocks are held decoded or being decoded (a block is
// at most xzMaxParallelBlock).
type xzParallel struct {
	ra io.ReaderAt
	s  *xzStream
	// in counts the compressed bytes of the blocks Read has reached,
	// for the pipe's ratio check.
	in *countReader

	order    chan *xzOutput
	decoders chan *fastxz.Reader // idle decoders; nil until first used
	free     chan []byte         // chunks Read is done with
	stop     chan struct{}
	wg       sync.WaitGroup

	next  int       // the block Read takes next
	block *xzOutput // the block being read
	cur   []byte    // what is left of the chunk being read
	chunk []byte    // the chunk cur is in, to recycle
	err   error     // sticky
}

// xzOutput is one block's output: its chunks, in order, then its
// error (nil at the end of a good block), set before chunks is closed.
type xzOutput struct {
	chunks chan []byte
	err    error
}

const xzChunk = chunkSize

var errStopped = errors.New("stopped")

// startXZParallel starts decoding s's blocks, read from ra, on workers
// goroutines.
func startXZParallel(ra io.ReaderAt, s *xzStream, workers int) *xzParallel {
	workers = max(workers, 1)
	x := &xzParallel{
		ra: ra, s: s, in: &countReader{},
		order:    make(chan *xzOutput, workers+1),
		decoders: make(chan *fastxz.Reader, workers),
		free:     make(chan []byte, (workers+2)*8),
		stop:     make(chan struct{}),
	}
	for range workers {
		x.decoders <- nil
	}
	x.in.n.Add(xzframe.HeaderSize)
	x.wg.Add(1)
	go x.dispatch()
	return x
}

func (x *xzParallel) dispatch() {
	defer x.wg.Done()
	defer close(x.order)
	for i, b := range x.s.blocks {
		var dec *fastxz.Reader
		select {
		case dec = <-x.decoders:
		case <-x.stop:
			return
		}
		// Room for the whole block: a decoder never waits for Read.
		out := &xzOutput{chunks: make(chan []byte, (b.Uncompressed+xzChunk-1)/xzChunk)}
		select {
		case x.order <- out:
		case <-x.stop:
			return
		}
		x.wg.Add(1)
		go func() {
			defer x.wg.Done()
			out.err = x.decode(&dec, i, out.chunks)
			x.decoders <- dec
			close(out.chunks)
		}()
	}
}

// decode decodes block i with *dec (made if nil) into chunks. A panic
// of the decoder on hostile input becomes the block's error.
func (x *xzParallel) decode(dec **fastxz.Reader, i int, chunks chan<- []byte) (err error) {
	defer func() {
		if v := recover(); v != nil {
			*dec, err = nil, x.blockError(i, fmt.Errorf("decompressor panic: %v", v))
		}
	}()
	if *dec == nil {
		*dec, err = fastxz.NewReader(x.blockStream(i), 0)
	} else {
		err = (*dec).Reset(x.blockStream(i))
	}
	for left := x.s.blocks[i].Uncompressed; left > 0 && err == nil; {
		c := x.buffer(min(left, xzChunk))
		if _, err = io.ReadFull(*dec, c); err == nil {
			chunks <- c
			left -= int64(len(c))
		}
	}
	if err != nil {
		return x.blockError(i, err)
	}
	var one [1]byte
	if n, end := (*dec).Read(one[:]); n > 0 {
		return x.blockError(i, fmt.Errorf("decompresses to more than its size in the index, %d bytes", x.s.blocks[i].Uncompressed))
	} else if end != io.EOF {
		return x.endError(i, end)
	}
	return nil
}

// blockStream is block i as a stream of its own, which fails once the
// decoding is stopped.
func (x *xzParallel) blockStream(i int) io.Reader {
	b := x.s.blocks[i]
	return stopReader{io.MultiReader(bytes.NewReader(x.s.header),
		io.NewSectionReader(x.ra, b.offset, b.Padded()), bytes.NewReader(x.s.oneBlockTrailer(b))), x.stop}
}

// buffer returns a recycled or new buffer of n bytes, n ≤ xzChunk.
func (x *xzParallel) buffer(n int64) []byte {
	select {
	case b := <-x.free:
		return b[:n]
	default:
	}
	return make([]byte, n, xzChunk)
}

// endError explains an error after the whole of block i's data came
// out: its check, or its sizes in the index. To tell which, the block
// is decoded again, whole (this happens once, on the way to failing).
func (x *xzParallel) endError(i int, err error) error {
	if !errors.Is(err, fastxz.ErrData) {
		return x.blockError(i, err)
	}
	b := x.s.blocks[i]
	data := make([]byte, b.Uncompressed)
	dec, derr := fastxz.NewReader(x.blockStream(i), 0)
	if derr == nil {
		_, derr = io.ReadFull(dec, data)
	}
	stored := make([]byte, x.s.check.Size())
	if _, rerr := x.ra.ReadAt(stored, b.offset+b.Padded()-int64(len(stored))); derr == nil && rerr == nil &&
		!bytes.Equal(x.s.check.Append(nil, data), stored) {
		return x.blockError(i, fmt.Errorf("its %s check, where the index puts the block's end, does not match its data (%w)", x.s.check, err))
	}
	return x.blockError(i, fmt.Errorf("its sizes in the index do not match the block (%w)", err))
}

// blockError names the block that failed and says why in words.
func (x *xzParallel) blockError(i int, err error) error {
	b := x.s.blocks[i]
	what := err.Error()
	switch {
	case errors.Is(err, fastxz.ErrData) && !strings.HasPrefix(what, "its "):
		what = fmt.Sprintf("its data is corrupt or its size in the index too large (%v)", err)
	case errors.Is(err, fastxz.ErrBuf), errors.Is(err, io.ErrUnexpectedEOF):
		what = "truncated or corrupt"
	}
	return fmt.Errorf("block %d of %d (bytes %d to %d): %s", i+1, len(x.s.blocks), b.offset, b.offset+b.Padded(), what)
}

// Read reads the decoded blocks in order.
func (x *xzParallel) Read(p []byte) (int, error) {
	for len(x.cur) == 0 {
		if x.err != nil {
			return 0, x.err
		}
		if x.chunk != nil {
			select {
			case x.free <- x.chunk:
			default:
			}
			x.chunk = nil
		}
		x.err = x.nextChunk()
	}
	n := copy(p, x.cur)
	x.cur = x.cur[n:]
	return n, nil
}

// nextChunk takes the next chunk into x.cur, from this block or the
// next; io.EOF after the last block.
func (x *xzParallel) nextChunk() error {
	if x.block == nil {
		out, ok := <-x.order
		if !ok {
			return io.EOF
		}
		x.block = out
		x.in.n.Add(x.s.blocks[x.next].Padded())
		x.next++
	}
	c, ok := <-x.block.chunks
	if !ok {
		err := x.block.err
		x.block = nil
		return err
	}
	x.chunk, x.cur = c, c
	return nil
}

// Close stops the decoding and waits for every goroutine, so that the
// caller may close the file.
func (x *xzParallel) Close() {
	close(x.stop)
	x.wg.Wait()
}

// stopReader fails once stop is closed, so that a decoder ends soon.
type stopReader struct {
	r    io.Reader
	stop <-chan struct{}
}

func (s stopReader) Read(p []byte) (int, error) {
	select {
	case <-s.stop:
		return 0, errStopped
	default:
	}
	return s.r.Read(p)
}

// readerAt returns the rest of archive, from where it stands, as an
// io.ReaderAt, and its size, when archive is a regular file or a
// bytes.Reader: what the helper and the tests unpack.
func readerAt(archive io.Reader) (io.ReaderAt, int64, bool) {
	switch a := archive.(type) {
	case *os.File:
		fi, err := a.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return nil, 0, false
		}
		off, err := a.Seek(0, io.SeekCurrent)
		if err != nil || off > fi.Size() {
			return nil, 0, false
		}
		return io.NewSectionReader(a, off, fi.Size()-off), fi.Size() - off, true
	case *bytes.Reader:
		off := a.Size() - int64(a.Len())
		return io.NewSectionReader(a, off, int64(a.Len())), int64(a.Len()), true
	}
	return nil, 0, false
}
