package imagestore

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/mholt/archives"

	"allium/manifest"
)

// Unpack reads an image archive (a tar, compressed in any format
// mholt/archives identifies) from archive and writes it into dst, an
// empty directory: the tree to dst/rootfs and the manifest to
// dst/manifest.json. It returns the validated manifest.
//
// Every entry is hostile until proven otherwise, and an error names the
// entry it refuses:
//
//   - The archive's layout follows manifest.Layout, the rule the client
//     checks too: manifest.json first (the manifest says whether devices
//     and setuid files are wanted), everything else in rootfs/, no
//     absolute names and no "..".
//   - A symlink's target is resolved as the container will see it: an
//     absolute target from rootfs (so /bin/sh -> /bin/busybox works), a
//     relative one from the link's directory. It may not climb above
//     rootfs, nor use ".." after a component that is not a directory
//     the archive made earlier (a symlink there could make ".." land
//     elsewhere).
//   - A hard link must name an earlier non-directory entry in rootfs/.
//   - Nothing is written through a symlink: an entry whose parent is a
//     symlink (or a file) is refused. Directories are opened one
//     component at a time with O_NOFOLLOW below an os.Root on dst.
//   - A directory is never replaced by another type; other duplicates
//     replace the earlier entry.
//   - Device nodes need lim.AllowDevices and allow.devices in the
//     manifest; setuid and setgid files (not directories, where setgid
//     only passes the group on) need lim.AllowSetuid and allow.setuid.
//   - Entry types other than file, directory, symlink, hard link, fifo
//     and device are refused, as are truncated or corrupt compression
//     and a tar without its end-of-archive marker.
//   - lim caps file bytes, entries and the compression ratio.
//
// Owners (numeric; only when running as root), modes and modification
// times are applied; directories get theirs at the end. On error, dst
// holds a partial tree: the caller removes it.
func Unpack(ctx context.Context, archive io.Reader, dst string, lim Limits) (*manifest.Manifest, Stats, error) {
	start := time.Now()
	u := &unpacker{lim: lim}
	m, err := u.run(ctx, archive, dst)
	u.stats.Duration = time.Since(start)
	return m, u.stats, err
}

type unpacker struct {
	lim    Limits
	t      *tree
	m      *manifest.Manifest
	raw    []byte // manifest.json as read
	layout manifest.Layout
	stats  Stats
	last   string // the last entry read, for errors between entries
}

func (u *unpacker) run(ctx context.Context, archive io.Reader, dst string) (*manifest.Manifest, error) {
	t, err := openTree(dst)
	if err != nil {
		return nil, err
	}
	defer t.close()
	u.t = t
	stream, stop, err := openStream(ctx, archive, u.lim)
	if err != nil {
		return nil, err
	}
	defer stop()
	if err := u.entries(ctx, stream); err != nil {
		return nil, err
	}
	if err := t.finish(); err != nil {
		return nil, err
	}
	if err := t.writeManifest(u.raw); err != nil {
		return nil, err
	}
	return u.m, nil
}

// openStream identifies the compression and returns the tar stream and
// a function that releases it. An .xz file of several blocks whose
// index can be read from its end (a regular file) is decoded in
// parallel (xzparallel.go); any other archive, by one decoder.
func openStream(ctx context.Context, archive io.Reader, lim Limits) (io.Reader, func(), error) {
	ra, size, seekable := readerAt(archive)
	in := &countReader{r: archive}
	format, r, err := archives.Identify(ctx, "", in)
	var comp archives.Compression
	switch f := format.(type) {
	case archives.Tar:
		return r, func() {}, nil
	case archives.CompressedArchive:
		if _, ok := f.Extraction.(archives.Tar); !ok {
			return nil, nil, bad("imagestore: a %s archive: want a tar", f.Extension())
		}
		comp = f.Compression
	case archives.Compression:
		comp = f // no tar matched inside; let archive/tar say what is wrong
	case nil:
		if errors.Is(err, archives.NoMatch) {
			return nil, nil, bad("imagestore: not a tar archive, nor a compression that mholt/archives knows")
		}
		return nil, nil, bad("imagestore: identifying the archive: %v: it is truncated or corrupt", err)
	default:
		return nil, nil, bad("imagestore: a %s archive: want a tar", format.Extension())
	}
	name := strings.TrimPrefix(comp.Extension(), ".")
	if _, ok := comp.(archives.Xz); ok && seekable {
		if s := readXZIndex(ra, size); s != nil && len(s.blocks) > 1 {
			x := startXZParallel(ra, s, runtime.GOMAXPROCS(0))
			p := startPipe(x, x.in, name, lim.MaxRatio)
			return p, func() { x.Close(); p.Close() }, nil
		}
	}
	dec, err := decompressor(comp).OpenReader(r)
	if err != nil {
		return nil, nil, bad("imagestore: %s data: %v: the archive is truncated or corrupt", name, err)
	}
	p := startPipe(dec, in, name, lim.MaxRatio)
	return p, func() { p.Close(); dec.Close() }, nil
}

// decompressor bounds what a hostile header can ask for. xz (whose
// decoder caps the dictionary at 64 MiB), gzip, bzip2 and lz4 are
// bounded already; zstd's window is capped at 128 MiB, the zstd tool's
// default, and it decodes on one goroutine, since the pipe overlaps it
// with the writes.
func decompressor(c archives.Compression) archives.Decompressor {
	if _, ok := c.(archives.Zstd); ok {
		return archives.Zstd{DecoderOptions: []zstd.DOption{
			zstd.WithDecoderMaxWindow(128 << 20), zstd.WithDecoderConcurrency(1)}}
	}
	return c
}

// entries reads the tar to its end.
func (u *unpacker) entries(ctx context.Context, stream io.Reader) error {
	in := &countReader{r: stream}
	tr := tar.NewReader(in)
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("imagestore: unpack: %w", err)
		}
		before := in.n.Load()
		h, err := tr.Next()
		if err == io.EOF {
			return u.end(in.n.Load()-before, stream)
		}
		if err != nil {
			return u.streamError(err, "")
		}
		if u.stats.Entries++; u.stats.Entries > u.lim.MaxEntries {
			return &EntryError{h.Name, bad("more than %d entries (MaxEntries)", u.lim.MaxEntries)}
		}
		if err := u.entry(h, tr); err != nil {
			return err
		}
		u.last = h.Name
	}
}

// end checks the end of the archive: the tar's end-of-archive marker
// (two zero blocks: read is what the last Next consumed, padding
// included), then the rest of the stream, so that the decompressor
// checks its trailer; trailing padding is fine.
func (u *unpacker) end(read int64, stream io.Reader) error {
	if read < 2*512 {
		return u.streamError(io.ErrUnexpectedEOF, "")
	}
	const maxTrailing = 16 << 20
	n, err := io.Copy(io.Discard, io.LimitReader(stream, maxTrailing+1))
	if err != nil {
		return u.streamError(err, "")
	}
	if n > maxTrailing {
		return bad("imagestore: more than %d bytes after the end of the tar", maxTrailing)
	}
	if u.m == nil {
		return bad("imagestore: %s: missing; an image archive holds %s and %s/", manifest.File, manifest.File, manifest.RootfsDir)
	}
	return nil
}

// streamError explains an error of the tar stream: a truncated or
// corrupt archive, or a limit. entry is the entry being read, if any.
func (u *unpacker) streamError(err error, entry string) error {
	var de *decodeError
	switch {
	case errors.As(err, &de) && strings.Contains(err.Error(), "truncated or corrupt"):
		err = invalid(err)
	case errors.As(err, &de):
		err = bad("%v: the archive is truncated or corrupt", err)
	case errors.Is(err, ErrInvalid):
	case errors.Is(err, io.ErrUnexpectedEOF):
		err = bad("tar: truncated")
	default:
		err = bad("tar: %v: the archive is corrupt", err)
	}
	if entry != "" {
		return &EntryError{entry, err}
	}
	if u.last != "" {
		return fmt.Errorf("imagestore: after entry %q: %w", u.last, err)
	}
	return fmt.Errorf("imagestore: %w", err)
}

// entry checks one entry against the layout rule and the node's policy,
// and writes it.
func (u *unpacker) entry(h *tar.Header, r io.Reader) error {
	part, rel, err := u.layout.Next(h)
	switch {
	case err != nil:
		return &EntryError{h.Name, bad("%v", err)}
	case part == manifest.Skip:
		return nil
	case part == manifest.ManifestPart:
		return u.manifest(h, r)
	}
	if err := u.check(h); err != nil {
		return &EntryError{h.Name, err}
	}
	err = u.write(rel, h, r)
	if err != nil && !errors.As(err, new(*EntryError)) {
		err = &EntryError{h.Name, err}
	}
	return err
}

func (u *unpacker) manifest(h *tar.Header, r io.Reader) error {
	switch {
	case h.Typeflag != tar.TypeReg:
		return &EntryError{h.Name, bad("not a regular file")}
	case h.Size > manifest.MaxSize:
		return &EntryError{h.Name, bad("%d bytes; a manifest has at most %d", h.Size, manifest.MaxSize)}
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		return u.streamError(err, h.Name)
	}
	m, err := manifest.Parse(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("imagestore: %w", invalid(err))
	}
	u.m, u.raw = m, raw
	return nil
}

const (
	modeSetuid = 0o4000
	modeSetgid = 0o2000
)

// check applies the node's and the manifest's policy to an entry.
func (u *unpacker) check(h *tar.Header) error {
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo:
	case tar.TypeChar, tar.TypeBlock:
		if !u.m.Allow.Devices {
			return bad("a device node; the manifest does not ask for devices (allow.devices)")
		}
		if !u.lim.AllowDevices {
			return bad("a device node; this node does not allow devices in images")
		}
	default:
		return bad("tar entry type %q: not a file, directory, symlink, hard link, fifo or device", h.Typeflag)
	}
	if h.Mode&(modeSetuid|modeSetgid) != 0 && h.Typeflag != tar.TypeDir && h.Typeflag != tar.TypeLink {
		if !u.m.Allow.Setuid {
			return bad("mode %#o is setuid or setgid; the manifest does not ask for that (allow.setuid)", h.Mode&0o7777)
		}
		if !u.lim.AllowSetuid {
			return bad("mode %#o is setuid or setgid; this node does not allow that in images", h.Mode&0o7777)
		}
	}
	if h.Uid < 0 || h.Uid > manifest.MaxID || h.Gid < 0 || h.Gid > manifest.MaxID {
		return bad("owner %d:%d: IDs go from 0 to %d", h.Uid, h.Gid, manifest.MaxID)
	}
	if h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeGNUSparse {
		if h.Size > u.lim.MaxBytes-u.stats.Bytes {
			return bad("%d bytes would take the image past %d bytes of files (MaxBytes)", h.Size, u.lim.MaxBytes)
		}
	}
	return nil
}

// write creates one entry of rootfs; rel is its path below rootfs.
func (u *unpacker) write(rel string, h *tar.Header, r io.Reader) error {
	switch h.Typeflag {
	case tar.TypeDir:
		return u.t.dir(rel, h)
	case tar.TypeSymlink:
		return u.t.symlink(rel, h)
	case tar.TypeLink:
		return u.hardlink(rel, h)
	case tar.TypeReg, tar.TypeGNUSparse:
		n, err := u.t.file(rel, h, r)
		u.stats.Bytes += n
		var pe *os.PathError
		if err != nil && !errors.As(err, &pe) && !errors.Is(err, ErrInvalid) {
			return u.streamError(err, h.Name) // the reading side failed
		}
		return err
	}
	return u.t.node(rel, h)
}

func (u *unpacker) hardlink(rel string, h *tar.Header) error {
	name, ok := manifest.CleanName(h.Linkname)
	target, inRootfs := manifest.RootfsPath(name)
	if !ok || !inRootfs {
		return bad("hard link to %q: outside %s/", h.Linkname, manifest.RootfsDir)
	}
	return u.t.link(rel, target, h.Linkname)
}
