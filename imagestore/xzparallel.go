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
)

// xzParallel decodes the blocks of a multi-block .xz file (as mkimage
// and `xz -T0` write them) on several goroutines and reads their output
// in order. Each block is decoded as a stream of its own (xzindex.go),
// by the same decoder and with the same 64 MiB dictionary cap as the
// streaming path, which checks its sizes and its CRC32, CRC64 or
// SHA-256.
//
//	dispatch ─ for each block, in order: take an idle decoder (≤ workers busy)
//	   │                                  └─> go decode ─> result ─┐
//	   └─> order: [result chan] × window, in file order ───────────┴─> Read (the pipe's goroutine)
//
// At most window+1 blocks are held decoded or being decoded, each whole
// (a block is at most xzMaxParallelBlock).
type xzParallel struct {
	ra io.ReaderAt
	s  *xzStream
	// in counts the compressed bytes of the blocks Read has reached,
	// for the pipe's ratio check.
	in *countReader

	order    chan chan xzResult
	decoders chan *fastxz.Reader // idle decoders; nil until first used
	free     chan []byte         // block buffers Read is done with
	stop     chan struct{}
	wg       sync.WaitGroup

	next int    // the block Read takes next
	cur  []byte // what is left of the block being read
	buf  []byte // the block cur is in, to recycle
	err  error  // sticky
}

type xzResult struct {
	data []byte
	err  error
}

var errStopped = errors.New("stopped")

// startXZParallel starts decoding s's blocks, read from ra, on workers
// goroutines.
func startXZParallel(ra io.ReaderAt, s *xzStream, workers int) *xzParallel {
	workers = max(workers, 1)
	x := &xzParallel{
		ra: ra, s: s, in: &countReader{},
		order:    make(chan chan xzResult, workers+1),
		decoders: make(chan *fastxz.Reader, workers),
		free:     make(chan []byte, workers+2),
		stop:     make(chan struct{}),
	}
	for range workers {
		x.decoders <- nil
	}
	x.in.n.Add(xzHeaderSize)
	x.wg.Add(1)
	go x.dispatch()
	return x
}

func (x *xzParallel) dispatch() {
	defer x.wg.Done()
	defer close(x.order)
	for i := range x.s.blocks {
		var dec *fastxz.Reader
		select {
		case dec = <-x.decoders:
		case <-x.stop:
			return
		}
		res := make(chan xzResult, 1)
		select {
		case x.order <- res:
		case <-x.stop:
			return
		}
		x.wg.Add(1)
		go func() {
			defer x.wg.Done()
			data, err := x.decode(&dec, i)
			x.decoders <- dec
			res <- xzResult{data, err}
		}()
	}
}

// decode decodes block i with *dec (made if nil). A panic of the
// decoder on hostile input becomes the block's error.
func (x *xzParallel) decode(dec **fastxz.Reader, i int) (data []byte, err error) {
	b := x.s.blocks[i]
	defer func() {
		if v := recover(); v != nil {
			*dec, data, err = nil, nil, x.blockError(i, fmt.Errorf("decompressor panic: %v", v))
		}
	}()
	src := stopReader{io.MultiReader(bytes.NewReader(x.s.header),
		io.NewSectionReader(x.ra, b.offset, b.length()), bytes.NewReader(x.s.oneBlockTrailer(b))), x.stop}
	if *dec == nil {
		*dec, err = fastxz.NewReader(src, 0)
	} else {
		err = (*dec).Reset(src)
	}
	if err == nil {
		data = x.buffer(b.size)
		_, err = io.ReadFull(*dec, data)
	}
	if err != nil {
		return nil, x.blockError(i, err)
	}
	var one [1]byte
	if n, end := (*dec).Read(one[:]); n > 0 {
		return nil, x.blockError(i, fmt.Errorf("decompresses to more than its size in the index, %d bytes", b.size))
	} else if end != io.EOF {
		return nil, x.endError(i, data, end)
	}
	return data, nil
}

// endError explains an error after the whole of block i's data came
// out: its check, or its sizes in the index.
func (x *xzParallel) endError(i int, data []byte, err error) error {
	if !errors.Is(err, fastxz.ErrData) {
		return x.blockError(i, err)
	}
	b := x.s.blocks[i]
	stored := make([]byte, xzChecks[x.s.header[7]].size)
	if _, rerr := x.ra.ReadAt(stored, b.offset+b.length()-int64(len(stored))); rerr == nil && !xzCheckMatches(x.s.header[7], data, stored) {
		return x.blockError(i, fmt.Errorf("its %s check, where the index puts the block's end, does not match its data (%w)", x.s.check, err))
	}
	return x.blockError(i, fmt.Errorf("its sizes in the index do not match the block (%w)", err))
}

// buffer returns a recycled or new buffer of n bytes.
func (x *xzParallel) buffer(n int64) []byte {
	select {
	case b := <-x.free:
		if int64(cap(b)) >= n {
			return b[:n]
		}
	default:
	}
	return make([]byte, n)
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
	return fmt.Errorf("block %d of %d (bytes %d to %d): %s", i+1, len(x.s.blocks), b.offset, b.offset+b.length(), what)
}

// Read reads the decoded blocks in order.
func (x *xzParallel) Read(p []byte) (int, error) {
	for len(x.cur) == 0 {
		if x.err != nil {
			return 0, x.err
		}
		if x.buf != nil {
			select {
			case x.free <- x.buf:
			default:
			}
			x.buf = nil
		}
		res, ok := <-x.order
		if !ok {
			x.err = io.EOF
			continue
		}
		r := <-res
		if r.err != nil {
			x.err = r.err
			continue
		}
		x.in.n.Add(x.s.blocks[x.next].length())
		x.next++
		x.buf, x.cur = r.data, r.data
	}
	n := copy(p, x.cur)
	x.cur = x.cur[n:]
	return n, nil
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
