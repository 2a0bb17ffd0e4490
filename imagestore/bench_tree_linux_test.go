package imagestore

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mholt/archives"
	"golang.org/x/sys/unix"
)

// The generated rootfs of BenchmarkUnpackThroughput: deterministic (a
// fixed seed), shaped like a distribution's /usr: 300 packages, each a
// library directory with subdirectories and a doc directory;
// 15,000 regular files (87% under 16 KiB, 12.6% of 16-48 KiB, 60 of
// 256 KiB-1 MiB; ~200 MB), text for docs and scripts and
// binary-like data for libraries, 1,200 symlinks (relative and
// absolute), 30 hard links. It compresses about like a real rootfs:
// xz -6 3.3:1, zstd -3 and gzip -6 2.8:1 (a Debian rootfs of the same
// size: 3.7, 2.7 and 2.6).
const (
	treePackages = 300
	treeFiles    = 15_000
	treeSymlinks = 1_200
	treeLinks    = 30
)

// writeRootfsTree writes the tree to dir/rootfs.
func writeRootfsTree(b testing.TB, dir string) {
	g := &treeGen{r: rand.New(rand.NewPCG(3, 4)), root: filepath.Join(dir, "rootfs")}
	g.vocabulary()
	var dirs []string
	for p := range treePackages {
		lib := fmt.Sprintf("usr/lib/pkg%03d", p)
		dirs = append(dirs, lib, fmt.Sprintf("usr/share/doc/pkg%03d", p))
		for s := range 1 + g.r.IntN(3) {
			dirs = append(dirs, fmt.Sprintf("%s/sub%d", lib, s))
		}
	}
	dirs = append(dirs, "usr/bin", "etc", "tmp", "var/lib")
	for _, d := range dirs {
		g.mkdir(b, d)
	}
	var files []string
	for i := range treeFiles {
		d := dirs[g.r.IntN(len(dirs))]
		files = append(files, g.file(b, d, i))
	}
	for i := range treeSymlinks {
		g.symlink(b, files[g.r.IntN(len(files))], i)
	}
	for i := range treeLinks {
		f := files[g.r.IntN(len(files))]
		if err := os.Link(filepath.Join(g.root, f), filepath.Join(g.root, fmt.Sprintf("%s.hardlink%d", f, i))); err != nil {
			b.Fatal(err)
		}
	}
}

type treeGen struct {
	r     *rand.Rand
	root  string
	words []string
	buf   []byte
}

func (g *treeGen) mkdir(b testing.TB, d string) {
	if err := os.MkdirAll(filepath.Join(g.root, d), 0o755); err != nil {
		b.Fatal(err)
	}
}

// vocabulary makes 4,096 pseudo-words of 2-9 letters.
func (g *treeGen) vocabulary() {
	for range 4096 {
		w := make([]byte, 2+g.r.IntN(8))
		for i := range w {
			w[i] = byte('a' + g.r.IntN(26))
		}
		g.words = append(g.words, string(w))
	}
}

// file writes file i in directory d and returns its path.
func (g *treeGen) file(b testing.TB, d string, i int) string {
	var size int
	switch x := g.r.IntN(1000); {
	case x < 4:
		size = 256<<10 + g.r.IntN(768<<10)
	case x < 130:
		size = 16<<10 + g.r.IntN(32<<10)
	default:
		size = 64 + g.r.IntN(16<<10-64)
	}
	name, mode := fmt.Sprintf("%s/f%05d.txt", d, i), os.FileMode(0o644)
	if g.r.IntN(2) == 0 {
		name, mode = fmt.Sprintf("%s/lib%05d.so", d, i), 0o755
		g.binary(size)
	} else {
		g.text(size)
	}
	if err := os.WriteFile(filepath.Join(g.root, name), g.buf, mode); err != nil {
		b.Fatal(err)
	}
	return name
}

// text fills g.buf with size bytes of words, common ones more often.
func (g *treeGen) text(size int) {
	g.buf = g.buf[:0]
	for n := 0; len(g.buf) < size; n++ {
		g.buf = append(g.buf, g.words[g.r.IntN(1+g.r.IntN(1+g.r.IntN(len(g.words))))]...)
		switch {
		case n%11 == 10:
			g.buf = append(g.buf, '\n')
		case g.r.IntN(9) == 0:
			g.buf = append(g.buf, ", "...)
		default:
			g.buf = append(g.buf, ' ')
		}
	}
	g.buf = g.buf[:size]
}

// binary fills g.buf with size bytes of machine-code-like data: runs
// of skewed random bytes, runs of zeros, and copies of earlier stretches.
func (g *treeGen) binary(size int) {
	g.buf = g.buf[:0]
	for len(g.buf) < size {
		n := 4 + g.r.IntN(28)
		switch x := g.r.IntN(100); {
		case x < 55 && len(g.buf) > 64:
			n = 4 + g.r.IntN(40)
			from := len(g.buf) - 1 - g.r.IntN(min(len(g.buf)-1, 4096))
			for k := range n {
				g.buf = append(g.buf, g.buf[from+k%(len(g.buf)-from)])
			}
		case x < 65:
			g.buf = append(g.buf, make([]byte, n)...)
		default:
			for range n {
				g.buf = append(g.buf, byte(g.r.Uint32()&g.r.Uint32()))
			}
		}
	}
	g.buf = g.buf[:size]
}

// symlink links a new name to target: relative from target's own
// directory, or absolute from usr/bin.
func (g *treeGen) symlink(b testing.TB, target string, i int) {
	name, to := fmt.Sprintf("%s.link%d", target, i), filepath.Base(target)
	if i%4 == 0 {
		name, to = fmt.Sprintf("usr/bin/tool%04d", i), "/"+target
	}
	if err := os.Symlink(to, filepath.Join(g.root, name)); err != nil {
		b.Fatal(err)
	}
}

// countEntries counts a tar's entries, reading it to the end.
func countEntries(r io.Reader) (int, error) {
	tr := tar.NewReader(r)
	n := 0
	for {
		_, err := tr.Next()
		if err == io.EOF {
			_, err = io.Copy(io.Discard, r) // the end blocks, for a hash of the whole file
			return n, err
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

// benchSet is one tree's archives.
type benchSet struct {
	tarBytes int64
	entries  int
	archives []benchArchive // the plain tar first
}

// makeBenchArchives writes the tree with gen, packs it with mkimage as
// a plain tar, and makes (or finds in the cache) the compressed ones.
// The tree goes to a tmpfs when there is one: removing it from a
// journal-less ext4 would slow file creation there for a minute.
func makeBenchArchives(b *testing.B, name, mkimage string, gen func(testing.TB, string)) benchSet {
	dir := b.TempDir()
	tree := filepath.Join(scratchDir(b), "tree")
	gen(b, tree)
	defer os.RemoveAll(tree)
	plain := filepath.Join(dir, "image.tar")
	mkimagePack(b, mkimage, tree, plain, "none")
	sum, entries := tarSum(b, plain)
	mkSum := fileSum(b, mkimage)
	cache := benchCacheDir(b, name, sum[:16]+"-"+mkSum[:8])

	set := benchSet{entries: entries}
	add := func(label, how, path string) {
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		set.archives = append(set.archives, benchArchive{label, how, path, fi.Size()})
	}
	add("tar", "mkimage pack --compress none", plain)
	set.tarBytes = set.archives[0].size
	for _, c := range singleStreams() {
		p := filepath.Join(cache, "image.tar."+c.ext)
		cached(b, p, func(tmp string) { c.build(b, plain, tmp) })
		add(c.ext, c.how, p)
	}
	// mk-xz4m: xz in 4 MiB blocks, mkimage's default before 1 MiB (the
	// app's 7 MB tar is then two blocks, which leaves little to decode
	// in parallel).
	for _, m := range []struct{ label, method, ext, block string }{
		{"mk-xz", "xz", "xz", "1M"}, {"mk-xz4m", "xz", "xz", "4M"}, {"mk-zst", "zstd", "zst", "4M"},
	} {
		p := filepath.Join(cache, "mkimage-"+m.block+".tar."+m.ext)
		cached(b, p, func(tmp string) { mkimagePack(b, mkimage, tree, tmp, m.method, "--block-size", m.block) })
		add(m.label, "mkimage pack, "+m.block+"iB blocks", p)
	}
	return set
}

// scratchDir is a new directory in /dev/shm when that is a tmpfs, else
// in os.TempDir(); cleanup removes it.
func scratchDir(b *testing.B) string {
	var st unix.Statfs_t
	if unix.Statfs("/dev/shm", &st) != nil || st.Type != unix.TMPFS_MAGIC {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp("/dev/shm", "allium-bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// benchCacheDir is os.TempDir()/allium-bench-unpack/NAME-KEY; other
// keys of NAME (older trees or binaries) are removed.
func benchCacheDir(b *testing.B, name, key string) string {
	base := filepath.Join(os.TempDir(), "allium-bench-unpack")
	old, _ := filepath.Glob(filepath.Join(base, name+"-*"))
	dir := filepath.Join(base, name+"-"+key)
	for _, o := range old {
		if o != dir {
			os.RemoveAll(o)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	return dir
}

// cached makes path with build (given a temporary name beside it) unless
// it exists.
func cached(b *testing.B, path string, build func(tmp string)) {
	if _, err := os.Stat(path); err == nil {
		return
	}
	tmp := path + ".tmp"
	start := time.Now()
	build(tmp)
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	b.Logf("made %s in %v (cached for the next run)", path, time.Since(start).Round(time.Millisecond))
}

func mkimagePack(b testing.TB, mkimage, tree, out, method string, more ...string) {
	cmd := exec.Command(mkimage, append([]string{"pack", filepath.Join(tree, "rootfs"), "-o", out, "--compress", method,
		"--name", "bench", "--cmd", "/bin/true"}, more...)...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
	if o, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, o)
	}
}

// singleStream is a one-stream compression of the plain tar.
type singleStream struct {
	ext, how string
	build    func(b testing.TB, plain, out string)
}

// singleStreams are xz, gz and zst as their tools make them, or as
// mholt/archives does when a tool is missing.
func singleStreams() []singleStream {
	var s []singleStream
	for _, c := range []struct {
		ext  string
		tool []string
		goc  archives.Compressor
	}{
		{"xz", []string{"xz", "-6", "-T1", "-c"}, archives.Xz{}},
		{"gz", []string{"gzip", "-6", "-n", "-c"}, archives.Gz{}},
		{"zst", []string{"zstd", "-3", "-q", "-c"}, archives.Zstd{}},
	} {
		if _, err := exec.LookPath(c.tool[0]); err == nil {
			s = append(s, singleStream{c.ext, strings.Join(c.tool[:len(c.tool)-1], " "), func(b testing.TB, plain, out string) {
				compressWithTool(b, c.tool, plain, out)
			}})
			continue
		}
		s = append(s, singleStream{c.ext, "mholt/archives", func(b testing.TB, plain, out string) {
			compressWithGo(b, c.goc, plain, out)
		}})
	}
	return s
}

func compressWithTool(b testing.TB, tool []string, plain, out string) {
	in, err := os.Open(plain)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	f, err := os.Create(out)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var stderr bytes.Buffer
	cmd := exec.Command(tool[0], tool[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, f, &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s < %s: %v: %s", strings.Join(tool, " "), plain, err, &stderr)
	}
}

func compressWithGo(b testing.TB, c archives.Compressor, plain, out string) {
	in, err := os.Open(plain)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	f, err := os.Create(out)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w, err := c.OpenWriter(f)
	if err == nil {
		_, err = io.Copy(w, in)
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		b.Fatalf("compress %s: %v", plain, err)
	}
}

// tarSum is the sha256 of a tar file and its number of entries.
func tarSum(b testing.TB, path string) (string, int) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := countEntries(io.TeeReader(f, h))
	if err != nil {
		b.Fatalf("%s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

func fileSum(b testing.TB, path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// writeAppTree writes benchTree's image to dir: dir/rootfs and
// dir/manifest.json.
func writeAppTree(b testing.TB, dir string) {
	plain, _ := benchTree(b)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if _, _, err := Unpack(context.Background(), bytes.NewReader(plain), dir, DefaultLimits(1<<40)); err != nil {
		b.Fatalf("Unpack(benchTree) = %v", err)
	}
}
