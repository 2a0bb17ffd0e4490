package main

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// compressors are the initramfs compressions the Debian kernel unpacks
// (CONFIG_RD_GZIP, RD_ZSTD, RD_XZ). Each writes the same bytes for the
// same input: no timestamps, no names, one encoder goroutine.
var compressors = map[string]func(io.Writer) (io.WriteCloser, error){
	"none": func(w io.Writer) (io.WriteCloser, error) { return nopCloser{w}, nil },
	"gzip": func(w io.Writer) (io.WriteCloser, error) {
		return gzip.NewWriterLevel(w, gzip.BestCompression)
	},
	"zstd": func(w io.Writer) (io.WriteCloser, error) {
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedBestCompression),
			zstd.WithEncoderConcurrency(1))
	},
	// The kernel's xz decoder checks CRC32 but not xz's default CRC64, and
	// rejects a stream it cannot check.
	"xz": func(w io.Writer) (io.WriteCloser, error) {
		return xz.WriterConfig{CheckSum: xz.CRC32}.NewWriter(w)
	},
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// compressionNames lists the compressions for help and errors.
func compressionNames() string {
	var names []string
	for n := range compressors {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, "|")
}

// compressArchive renders a and compresses it with the named method.
func compressArchive(a *archive, method string) ([]byte, error) {
	newWriter, ok := compressors[method]
	if !ok {
		return nil, fmt.Errorf("compression %q: want one of %s", method, compressionNames())
	}
	var buf bytes.Buffer
	zw, err := newWriter(&buf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	if _, err := a.WriteTo(zw); err != nil {
		zw.Close()
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	return buf.Bytes(), nil
}
