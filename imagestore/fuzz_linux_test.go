package imagestore

import (
	"bytes"
	"context"
	"testing"

	"github.com/ulikunitz/xz"
)

// FuzzUnpack feeds Unpack random archives, seeded with the good and the
// hostile ones (uncompressed, and gzipped so that the fuzzer also
// reaches the decompressing path; and as xz of several blocks, for the
// parallel decoder): it must not panic, must refuse with
// an error naming imagestore, and must never create or change anything
// outside dst.
func FuzzUnpack(f *testing.F) {
	f.Add(image(f, goodTree()...))
	f.Add(compress(f, compressions[1].c, image(f, goodTree()...)))
	f.Add(xzBlocks(f, image(f, goodTree()...), 4<<10, xz.CRC32)) // the parallel xz path
	for _, h := range hostiles {
		if h.compressed {
			continue
		}
		f.Add(h.build(f))
		f.Add(compress(f, compressions[1].c, h.build(f)))
	}
	lim := Limits{MaxBytes: 1 << 20, MaxEntries: 200, MaxRatio: 100}
	f.Fuzz(func(t *testing.T, archive []byte) {
		sb := newSandbox(t)
		_, _, err := Unpack(context.Background(), bytes.NewReader(archive), sb.dst, lim)
		if err != nil && !bytes.HasPrefix([]byte(err.Error()), []byte("imagestore: ")) {
			t.Errorf("Unpack error %q does not start with imagestore:", err)
		}
		sb.check(t)
	})
}
