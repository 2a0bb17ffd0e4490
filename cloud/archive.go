package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"allium/manifest"

	"github.com/mholt/archives"
)

// archiveExts are the endings stripped from an image file's name to
// name its container: bar/foo.txz and foo.tar.zst both name foo.
var archiveExts = []string{
	".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.zst", ".tzst", ".tar.bz2", ".tbz2", ".tbz",
	".tar.lz4", ".tlz4", ".tar.br", ".tar.sz", ".tar.lz", ".tar.mz", ".tar",
}

// baseName is a file's base name without its archive endings.
func baseName(file string) string {
	base := filepath.Base(file)
	for _, ext := range archiveExts {
		if s, ok := strings.CutSuffix(base, ext); ok && s != "" {
			return s
		}
	}
	return base
}

// containerArg turns NAME or FILE into a container name: a path or a
// name with an archive ending is a file, named by its base name.
func containerArg(arg string) (string, error) {
	name := baseName(arg)
	if err := manifest.ValidName(name); err != nil {
		if name != arg {
			return "", usagef("container name %v (from %s)", err, arg)
		}
		return "", usagef("container name %v", err)
	}
	return name, nil
}

// image is an image file on this machine, its manifest checked.
type image struct {
	path     string
	file     *os.File
	size     int64
	manifest *manifest.Manifest
	digest   string // "sha256:…", once hashed
}

// openImage opens an image file and reads and validates its manifest.
func openImage(ctx context.Context, file string) (*image, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	img := &image{path: file, file: f}
	if err := img.check(ctx); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return img, nil
}

func (img *image) check(ctx context.Context) error {
	st, err := img.file.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return errors.New("not a regular file; give an image archive (mkimage pack makes one)")
	}
	img.size = st.Size()
	if img.manifest, err = readManifest(ctx, img.file); err != nil {
		return err
	}
	_, err = img.file.Seek(0, io.SeekStart)
	return err
}

func (img *image) Close() error { return img.file.Close() }

// hash computes the file's digest, telling progress how far it got.
func (img *image) hash(progress func(done int64)) error {
	h := sha256.New()
	r := io.NewSectionReader(img.file, 0, img.size)
	if _, err := io.Copy(h, &countReader{r: r, count: progress}); err != nil {
		return fmt.Errorf("%s: %w", img.path, err)
	}
	img.digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return nil
}

// countReader tells count the running total of what was read.
type countReader struct {
	r     io.Reader
	n     int64
	count func(int64)
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.count(c.n)
	return n, err
}

var errNotImage = errors.New("an image is a tar archive (compressed with xz, gzip, zstd, bzip2, lz4 or not at all) " +
	"holding manifest.json and rootfs/; mkimage pack makes one")

var errDocker = errors.New("this looks like a Docker or OCI image archive (docker save), not a native image, " +
	"and cloud does not convert those yet: export the container's files (docker export) into a directory " +
	"and make an image of it with mkimage pack")

// readManifest finds manifest.json at the start of an image archive and
// validates it. It reads no further than the entries before rootfs/.
func readManifest(ctx context.Context, r io.Reader) (*manifest.Manifest, error) {
	format, stream, err := archives.Identify(ctx, "", r) // by content, not by name
	if errors.Is(err, archives.NoMatch) {
		return nil, fmt.Errorf("not an archive: %w", errNotImage)
	}
	if err != nil {
		return nil, err
	}
	ex, ok := tarExtractor(format)
	if !ok {
		return nil, fmt.Errorf("a %s file, not a tar: %w", strings.TrimPrefix(format.Extension(), "."), errNotImage)
	}
	mf := &manifestFinder{}
	if err := ex.Extract(ctx, stream, mf.visit); err != nil {
		return nil, fmt.Errorf("reading the archive: %w", err)
	}
	if mf.err == nil && mf.m == nil {
		mf.err = fmt.Errorf("no %s in the archive: %w", manifest.File, errNotImage)
	}
	return mf.m, mf.err
}

// tarExtractor returns the extractor of a tar, compressed or not.
func tarExtractor(f archives.Format) (archives.Extractor, bool) {
	switch v := f.(type) {
	case archives.Tar:
		return v, true
	case archives.CompressedArchive:
		_, ok := v.Extraction.(archives.Tar)
		return v, ok
	}
	return nil, false
}

// maxLeading is how many entries past a refused one are read for the
// marks of a Docker or OCI archive, to say what the archive is.
const maxLeading = 16

// dockerMarks are names at the top of Docker and OCI image archives.
var dockerMarks = map[string]bool{"oci-layout": true, "repositories": true, "index.json": true}

// manifestFinder visits the archive's first entries, applying the layout
// rule the node applies (manifest.Layout), until it has the manifest or
// a reason to refuse the archive.
type manifestFinder struct {
	layout manifest.Layout
	m      *manifest.Manifest
	err    error
	seen   int // entries read after a refusal
}

func (mf *manifestFinder) visit(_ context.Context, fi archives.FileInfo) error {
	if name, _ := manifest.CleanName(fi.NameInArchive); dockerMarks[name] {
		mf.err = errDocker
		return fs.SkipAll
	}
	if mf.err != nil { // refused: look a little further for Docker's marks
		if mf.seen++; mf.seen >= maxLeading {
			return fs.SkipAll
		}
		return nil
	}
	part, _, err := mf.layout.Next(tarHeader(fi))
	switch {
	case err != nil:
		mf.err = fmt.Errorf("entry %q: %v: %w", fi.NameInArchive, err, errNotImage)
	case part == manifest.ManifestPart:
		mf.m, mf.err = parseManifest(fi)
		return fs.SkipAll
	}
	return nil
}

// tarHeader is the entry's tar header (mholt/archives hands it over for
// tar archives).
func tarHeader(fi archives.FileInfo) *tar.Header {
	if h, ok := fi.Header.(*tar.Header); ok {
		return h
	}
	return &tar.Header{Name: fi.NameInArchive, Typeflag: tar.TypeReg}
}

func parseManifest(fi archives.FileInfo) (*manifest.Manifest, error) {
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", manifest.File)
	}
	f, err := fi.Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, manifest.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", manifest.File, err)
	}
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("[")) {
		return nil, errDocker // docker save's manifest.json is a list
	}
	return manifest.Parse(bytes.NewReader(b))
}
