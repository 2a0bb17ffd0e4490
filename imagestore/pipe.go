package imagestore

import (
	"fmt"
	"io"
	"sync/atomic"
)

// The decompressor runs in its own goroutine and hands the tar reader
// its output in chunks through a bounded channel, so that decompression
// overlaps the file writes. Measured against bsdtar on the build machine,
// this took an xz extraction from 0.96x bsdtar's speed to 1.12x, and a
// small image's from 0.78x to 1.27x; it costs ~20% more CPU and up to
// chunksAhead chunks of memory.
//
//	archive ─> countReader ─> decompressor ─(goroutine)─> full: [chunk]×8 ─> pipe.Read ─> tar.Reader
//	               │                                          free: recycled chunks <─┘
//	               └── compressed bytes ─────> ratio check <── tar bytes (pipe.out)
const (
	chunkSize   = 1 << 20
	chunksAhead = 8
)

// countReader counts the bytes read through it; the count may be read
// from another goroutine.
type countReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// decodeError is the decompressor's error: a truncated or corrupt
// archive.
type decodeError struct {
	format string
	err    error
}

func (e *decodeError) Error() string { return fmt.Sprintf("%s data: %v", e.format, e.err) }
func (e *decodeError) Unwrap() error { return e.err }

// pipe is the reader's end of the decompressing goroutine.
type pipe struct {
	format   string
	in       *countReader // the compressed bytes
	maxRatio int64
	out      int64 // bytes handed to the reader

	full   chan []byte
	free   chan []byte
	stop   chan struct{}
	exited chan struct{}
	err    error  // the goroutine's error; written before full is closed
	rerr   error  // the reader's own error (the ratio), sticky
	cur    []byte // what is left of the chunk being read
	chunk  []byte // the chunk cur is in, to recycle
}

// startPipe starts decompressing dec, whose input is in.
func startPipe(dec io.Reader, in *countReader, format string, maxRatio int) *pipe {
	p := &pipe{
		format: format, in: in, maxRatio: int64(maxRatio),
		full: make(chan []byte, chunksAhead), free: make(chan []byte, chunksAhead+2),
		stop: make(chan struct{}), exited: make(chan struct{}),
	}
	go p.decode(dec)
	return p
}

// decode is the goroutine. A panic in a decompressor on hostile input
// becomes an error of the archive rather than the end of the process.
func (p *pipe) decode(dec io.Reader) {
	defer close(p.exited)
	defer close(p.full)
	defer func() {
		if v := recover(); v != nil {
			p.err = &decodeError{p.format, fmt.Errorf("decompressor panic: %v", v)}
		}
	}()
	for {
		var buf []byte
		select {
		case buf = <-p.free:
		default:
			buf = make([]byte, chunkSize)
		}
		n, err := fill(dec, buf)
		if n > 0 {
			select {
			case p.full <- buf[:n]:
			case <-p.stop:
				return
			}
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			p.err = &decodeError{p.format, err}
			return
		}
	}
}

// fill reads until b is full or r fails.
func fill(r io.Reader, b []byte) (int, error) {
	n, empty := 0, 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
		if empty++; m > 0 {
			empty = 0
		} else if empty > 100 {
			return n, io.ErrNoProgress
		}
	}
	return n, nil
}

func (p *pipe) Read(b []byte) (int, error) {
	if p.rerr != nil {
		return 0, p.rerr
	}
	if len(p.cur) == 0 {
		if p.chunk != nil {
			select {
			case p.free <- p.chunk[:cap(p.chunk)]:
			default:
			}
			p.chunk = nil
		}
		c, ok := <-p.full
		if !ok {
			if p.err != nil {
				return 0, p.err
			}
			return 0, io.EOF
		}
		p.chunk, p.cur = c, c
		p.out += int64(len(c))
		if p.rerr = p.checkRatio(); p.rerr != nil {
			return 0, p.rerr
		}
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

// checkRatio refuses a decompression bomb: more than maxRatio bytes of
// tar per compressed byte, once past the grace.
func (p *pipe) checkRatio() error {
	in := p.in.n.Load()
	if p.out <= RatioGrace || p.out <= in*p.maxRatio {
		return nil
	}
	return bad("%s data: over the compression ratio limit of %d:1 (MaxRatio): %d bytes of tar from %d compressed",
		p.format, p.maxRatio, p.out, in)
}

// Close stops the goroutine and waits for it, so that the caller may
// close the decompressor. If the goroutine is inside a Read of the
// archive, Close waits for that Read to return.
func (p *pipe) Close() {
	close(p.stop)
	<-p.exited
}
