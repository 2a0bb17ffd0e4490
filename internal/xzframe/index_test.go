package xzframe

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
)

func TestIndexRoundTrip(t *testing.T) {
	for _, records := range [][]Record{
		{},
		{{Unpadded: 5, Uncompressed: 0}},
		{{Unpadded: 1 << 22, Uncompressed: 4 << 20}, {Unpadded: 1234567, Uncompressed: 1<<63 - 1}, {Unpadded: 9, Uncompressed: 1}},
	} {
		index := AppendIndex([]byte{0xaa}, records)[1:]
		got, err := ParseIndex(index)
		if err != nil || !slices.Equal(got, records) || len(index)%4 != 0 {
			t.Errorf("ParseIndex(AppendIndex(%v)) = %v, %v (%d bytes); want the records back", records, got, err, len(index))
		}
		trailer := AppendTrailer(nil, CheckCRC32, records)
		if !bytes.Equal(trailer[:len(index)], index) {
			t.Errorf("AppendTrailer(%v) does not begin with AppendIndex's % x", records, index)
		}
		c, size, err := ParseFooter(trailer[len(index):])
		if c != CheckCRC32 || size != int64(len(index)) || err != nil {
			t.Errorf("AppendTrailer(%v): footer says %s, %d, %v; want CRC32, %d", records, c, size, err, len(index))
		}
	}
}

func TestPadded(t *testing.T) {
	for unpadded, want := range map[int64]int64{5: 8, 8: 8, 9: 12, maxUnpadded: maxUnpadded} {
		if got := (Record{Unpadded: unpadded}).Padded(); got != want {
			t.Errorf("Record{Unpadded: %d}.Padded() = %d, want %d", unpadded, got, want)
		}
	}
}

// index makes an index from body (indicator, count, records), padding
// it and appending its CRC32.
func index(body ...byte) []byte {
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	return withCRC(append(body, 0, 0, 0, 0), len(body), 0, len(body))
}

func TestParseIndexHostile(t *testing.T) {
	good := index(0, 1, 5, 0)
	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-1] ^= 1
	for _, tt := range []struct {
		name  string
		index []byte
		want  error
		say   string // in the error, to tell the refusals apart
	}{
		// A footer whose backward size is 0 says the index is 4 bytes:
		// imagestore's own parser sliced past the end of such an index.
		{"4 bytes of zero", []byte{0, 0, 0, 0}, ErrFormat, "want a multiple of 4 from 8"},
		{"not a multiple of 4", append(index(0, 0), 0), ErrFormat, "want a multiple of 4"},
		{"bad CRC32", badCRC, ErrChecksum, ""},
		{"indicator not zero", index(1, 0), ErrFormat, "indicator"},
		{"count cut short", index(0, 0x80, 0x80, 0x80), ErrTruncated, "count"},
		{"count not shortest", index(0, 0x81, 0, 5, 0), ErrFormat, "shortest"},
		{"more records than bytes", index(0, 0x7f, 5, 0), ErrFormat, "127 records"},
		{"record cut short", index(0, 1, 0x85, 0x80), ErrTruncated, "record 1"},
		{"oversized varint", index(append([]byte{0, 1}, append(bytes.Repeat([]byte{0xff}, 9), 0x01, 0)...)...), ErrFormat, "longer than 9 bytes"},
		{"unpadded size below 5", index(0, 1, 4, 0), ErrFormat, "unpadded size 4"},
		{"padding not zero", index(0, 1, 0x85, 0x01, 0, 1), ErrFormat, "padding"},
		{"junk after the records", index(0, 1, 5, 0, 0, 0, 0, 0), ErrFormat, "after the records"},
	} {
		got, err := ParseIndex(tt.index)
		if !errors.Is(err, tt.want) || !strings.Contains(fmt.Sprint(err), tt.say) {
			t.Errorf("%s: ParseIndex(% x) = %v, %v; want %v saying %q", tt.name, tt.index, got, err, tt.want, tt.say)
		}
	}
	if got, err := ParseIndex(good); err != nil || len(got) != 1 {
		t.Errorf("ParseIndex(% x) = %v, %v; want one record", good, got, err)
	}
}

// The framing of a multi-block file another encoder wrote
// (ulikunitz/xz) parses, and its index accounts for every block.
func TestParseOtherEncoder(t *testing.T) {
	data := bytes.Repeat([]byte("allium xzframe "), 20000)
	var buf bytes.Buffer
	w, err := xz.WriterConfig{BlockSize: 64 << 10, CheckSum: xz.SHA256}.NewWriter(&buf)
	if err == nil {
		_, err = w.Write(data)
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	file := buf.Bytes()
	hc, err := ParseHeader(file)
	if err != nil || hc != CheckSHA256 {
		t.Fatalf("ParseHeader = %s, %v; want SHA-256", hc, err)
	}
	fc, size, err := ParseFooter(file[len(file)-FooterSize:])
	if err != nil || fc != hc {
		t.Fatalf("ParseFooter = %s, %v; want SHA-256", fc, err)
	}
	indexAt := int64(len(file)) - FooterSize - size
	records, err := ParseIndex(file[indexAt : indexAt+size])
	if err != nil {
		t.Fatalf("ParseIndex = %v", err)
	}
	end, total := int64(HeaderSize), int64(0)
	for _, r := range records {
		end += r.Padded()
		total += r.Uncompressed
	}
	if len(records) != (len(data)+64<<10-1)/(64<<10) || end != indexAt || total != int64(len(data)) {
		t.Errorf("ParseIndex: %d records of %d bytes ending at %d; want %d of %d ending at the index, %d",
			len(records), total, end, (len(data)+64<<10-1)/(64<<10), len(data), indexAt)
	}
}

// ParseIndex never panics, and whatever it accepts AppendIndex encodes
// back to the same bytes.
func FuzzParseIndex(f *testing.F) {
	f.Add(index(0, 1, 5, 0))
	f.Add([]byte{0, 0, 0, 0})
	f.Add(AppendIndex(nil, []Record{{Unpadded: 1 << 20, Uncompressed: 4 << 20}, {Unpadded: 77, Uncompressed: 3}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		records, err := ParseIndex(b)
		if err != nil {
			return
		}
		if got := AppendIndex(nil, records); !bytes.Equal(got, b) {
			t.Errorf("ParseIndex(% x) = %v; AppendIndex gives % x", b, records, got)
		}
	})
}
