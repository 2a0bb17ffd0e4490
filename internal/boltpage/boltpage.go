// Package boltpage reads the page structure of a bbolt file and damages
// it, for the tests of state.db's recovery (test-only: PID 1 never
// imports it). It walks what the newest valid meta page reaches: the
// freelist and the pages of every bucket, nested and inline buckets'
// parents included, so a test damages a live page, not a freed one
// that still holds old data.
//
// The layout it reads is bbolt's (go.etcd.io/bbolt/internal/common), in
// the machine's byte order (little-endian on amd64 and arm64):
//
//	page:     id u64 | flags u16 | count u16 | overflow u32 | data
//	meta:     magic u32 | version u32 | page size u32 | flags u32 |
//	          root {page u64, sequence u64} | freelist u64 | high u64 |
//	          txid u64 | checksum u64
//	branch:   count × {pos u32, ksize u32, page u64}, then the keys
//	leaf:     count × {flags u32, pos u32, ksize u32, vsize u32}, then
//	          keys and values; flags 1: the value is a bucket {root
//	          page u64, sequence u64}, inline (root 0) with its page after
//
// pos is counted from the element's own start.
package boltpage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
)

// Types of Page.Type.
const (
	Meta     = "meta"
	Freelist = "freelist"
	Branch   = "branch"
	Leaf     = "leaf"
)

// Page is one page of the file that the newest meta page reaches.
type Page struct {
	ID   uint64
	Type string
	// Bucket is the bucket whose tree holds the page ("" for the root
	// bucket, meta and freelist pages).
	Bucket string
	// Elems are a leaf's or a branch's elements.
	Elems []Elem
}

// Elem is one element of a leaf or a branch page: offsets within the
// page.
type Elem struct {
	Key            []byte
	KeyOff, ValOff int // ValOff: 0 in a branch
	ValLen         int
	Bucket         bool // the value is a bucket
}

// File is a bbolt file's pages.
type File struct {
	Path     string
	PageSize int
	Pages    []Page
	data     []byte
}

var le = binary.LittleEndian

// Read reads path and walks its pages.
func Read(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f := &File{Path: path, data: data}
	m, err := f.newestMeta()
	if err != nil {
		return nil, err
	}
	f.Pages = append(f.Pages, Page{ID: 0, Type: Meta}, Page{ID: 1, Type: Meta})
	if fl := le.Uint64(m[32:]); fl != ^uint64(0) {
		f.Pages = append(f.Pages, Page{ID: fl, Type: Freelist})
	}
	if err := f.walk(le.Uint64(m[16:]), ""); err != nil {
		return nil, err
	}
	return f, nil
}

// newestMeta returns the meta (after the page header) of the valid
// meta page with the highest transaction id, and sets PageSize.
func (f *File) newestMeta() ([]byte, error) {
	var best []byte
	for _, off := range []int{0, -1} {
		if off < 0 {
			if f.PageSize == 0 {
				f.PageSize = os.Getpagesize()
			}
			off = f.PageSize
		}
		if off+16+64 > len(f.data) {
			continue
		}
		m := f.data[off+16 : off+16+64]
		h := fnv.New64a()
		h.Write(m[:56])
		if le.Uint32(m) != 0xED0CDAED || h.Sum64() != le.Uint64(m[56:]) {
			continue
		}
		if f.PageSize == 0 {
			f.PageSize = int(le.Uint32(m[8:]))
		}
		if best == nil || le.Uint64(m[48:]) > le.Uint64(best[48:]) {
			best = m
		}
	}
	if best == nil {
		return nil, errors.New("boltpage: no valid meta page")
	}
	return best, nil
}

func (f *File) page(id uint64) ([]byte, error) {
	off := int(id) * f.PageSize
	if off+16 > len(f.data) {
		return nil, fmt.Errorf("boltpage: page %d is beyond the file", id)
	}
	return f.data[off:], nil
}

// walk adds the pages of the tree rooted at id, of bucket, and of the
// buckets its leaves hold.
func (f *File) walk(id uint64, bucket string) error {
	p, err := f.page(id)
	if err != nil {
		return err
	}
	pg := Page{ID: id, Bucket: bucket}
	count := int(le.Uint16(p[10:]))
	switch le.Uint16(p[8:]) {
	case 0x01:
		pg.Type = Branch
		for i := range count {
			e := 16 + i*16
			pos, ks := int(le.Uint32(p[e:])), int(le.Uint32(p[e+4:]))
			pg.Elems = append(pg.Elems, Elem{Key: p[e+pos : e+pos+ks], KeyOff: e + pos})
		}
		f.Pages = append(f.Pages, pg)
		for i := range count {
			if err := f.walk(le.Uint64(p[16+i*16+8:]), bucket); err != nil {
				return err
			}
		}
		return nil
	case 0x02:
		pg.Type = Leaf
		pg.Elems = leafElems(p, count)
		f.Pages = append(f.Pages, pg)
		for _, e := range pg.Elems {
			if !e.Bucket {
				continue
			}
			if root := le.Uint64(p[e.ValOff:]); root != 0 {
				if err := f.walk(root, string(e.Key)); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return fmt.Errorf("boltpage: page %d has flags %#x", id, le.Uint16(p[8:]))
}

func leafElems(p []byte, count int) []Elem {
	var out []Elem
	for i := range count {
		e := 16 + i*16
		flags, pos := le.Uint32(p[e:]), int(le.Uint32(p[e+4:]))
		ks, vs := int(le.Uint32(p[e+8:])), int(le.Uint32(p[e+12:]))
		out = append(out, Elem{Key: p[e+pos : e+pos+ks], KeyOff: e + pos, ValOff: e + pos + ks, ValLen: vs, Bucket: flags&1 != 0})
	}
	return out
}

// Find returns the first page of typ whose Bucket is bucket (any bucket
// for "*"), and false when there is none.
func (f *File) Find(typ, bucket string) (Page, bool) {
	for _, p := range f.Pages {
		if p.Type == typ && (bucket == "*" || p.Bucket == bucket) {
			return p, true
		}
	}
	return Page{}, false
}

// NewestMeta is the id (0 or 1) of the meta page bbolt opens from.
func (f *File) NewestMeta() uint64 {
	m, _ := f.newestMeta()
	return uint64((len(f.data[:cap(f.data)]) - cap(m) - 16) / f.PageSize)
}

// Flip inverts n bytes at off within page id, in the file.
func (f *File) Flip(id uint64, off, n int) error {
	fh, err := os.OpenFile(f.Path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer fh.Close()
	at := int64(id)*int64(f.PageSize) + int64(off)
	buf := make([]byte, n)
	if _, err := fh.ReadAt(buf, at); err != nil {
		return err
	}
	for i := range buf {
		buf[i] ^= 0xFF
	}
	if _, err := fh.WriteAt(buf, at); err != nil {
		return err
	}
	return fh.Sync()
}
