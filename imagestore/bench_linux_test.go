package imagestore

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mholt/archives"
)

// benchTree is a ~5 MB app image of many small files (an npm-ish
// tree): 40 directories of 20 text files of 1-12 KiB, a 1 MiB binary,
// symlinks and a hard link. It returns the tar and its entry count.
func benchTree(b testing.TB) ([]byte, int) {
	r := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("function return const module exports require var if else for while true false null " +
		"undefined this new class extends import from export default async await try catch throw the of and")
	text := func(n int) string {
		var sb strings.Builder
		for sb.Len() < n {
			sb.WriteString(words[r.IntN(len(words))])
			sb.WriteByte(" \n"[r.IntN(8)/7])
		}
		return sb.String()
	}
	bin := make([]byte, 1<<20)
	for i := range bin {
		bin[i] = byte(r.IntN(256) & r.IntN(256)) // binary-like, compressible ~2:1
	}
	ents := []ent{fileEnt("rootfs/bin/node", string(bin), 0o755), symlinkEnt("rootfs/bin/npm", "/lib/npm/bin/npm-cli.js")}
	for d := range 40 {
		dir := fmt.Sprintf("rootfs/lib/node_modules/pkg%02d/lib/sub%d", d, d%3)
		for f := range 20 {
			ents = append(ents, fileEnt(fmt.Sprintf("%s/file%02d.js", dir, f), text(1024+r.IntN(11*1024)), 0o644))
		}
		ents = append(ents, symlinkEnt(dir+"/index.js", "file00.js"))
	}
	ents = append(ents, hardlinkEnt("rootfs/bin/nodejs", "rootfs/bin/node"))
	return image(b, ents...), len(ents) + 2
}

// BenchmarkUnpack extracts the same image as .tar, .tar.gz, .tar.zst and
// .tar.xz with Unpack, and in the same iteration (timer stopped) with
// `bsdtar -xf` when it is installed (apt-get install libarchive-tools)
// and, for the compressed ones, with Unpack of the uncompressed tar. It
// reports x-bsdtar (bsdtar's time over Unpack's: above 1, Unpack is
// faster) and x-tar (the uncompressed tar's time over this one's: what
// decompression costs when it overlaps the writes). bsdtar's time
// includes its process start; Unpack's does not (PID 1 adds the
// helper's).
func BenchmarkUnpack(b *testing.B) {
	plain, entries := benchTree(b)
	bsdtar, _ := exec.LookPath("bsdtar")
	if bsdtar == "" {
		b.Log("no bsdtar: no x-bsdtar ratio (apt-get install -y libarchive-tools)")
	}
	dir := b.TempDir()
	plainPath := filepath.Join(dir, "image.tar")
	if err := os.WriteFile(plainPath, plain, 0o644); err != nil {
		b.Fatal(err)
	}
	formats := []compression{{"tar", nil}, {"gz", archives.Gz{}}, {"zst", archives.Zstd{}}, {"xz", archives.Xz{}}}
	paths := map[string]string{"tar": plainPath}
	for _, c := range formats[1:] { // outside the timed sub-benchmarks: the xz encoder takes seconds
		paths[c.name] = filepath.Join(dir, "image.tar."+c.name)
		if err := os.WriteFile(paths[c.name], compress(b, c.c, plain), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range formats {
		b.Run(c.name, func(b *testing.B) {
			path := paths[c.name]
			var self, peer, base time.Duration
			for i := range b.N {
				b.StopTimer()
				runs := []func(){func() { self += unpackOnce(b, path, true) }}
				if bsdtar != "" {
					runs = append(runs, func() { peer += bsdtarOnce(b, bsdtar, path) })
				}
				if c.c != nil {
					runs = append(runs, func() { base += unpackOnce(b, plainPath, false) })
				}
				for j := range runs { // rotate the order: no run always goes first
					runs[(i+j)%len(runs)]()
				}
			}
			b.ReportMetric(float64(len(plain))/1e6/self.Seconds()*float64(b.N), "MB/s")
			b.ReportMetric(float64(entries)/self.Seconds()*float64(b.N), "files/s")
			if peer > 0 {
				b.ReportMetric(peer.Seconds()/self.Seconds(), "x-bsdtar")
			}
			if base > 0 {
				b.ReportMetric(base.Seconds()/self.Seconds(), "x-tar")
			}
		})
	}
}

// unpackOnce unpacks path into a fresh directory, timing Unpack only
// (and with the benchmark's timer when timed).
func unpackOnce(b *testing.B, path string, timed bool) time.Duration {
	dst, err := os.MkdirTemp(filepath.Dir(path), "dst")
	if err != nil {
		b.Fatal(err)
	}
	defer removeAll(dst)
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	lim := DefaultLimits(1 << 40)
	start := time.Now()
	if timed {
		b.StartTimer()
	}
	_, _, err = Unpack(context.Background(), f, dst, lim)
	if timed {
		b.StopTimer()
	}
	d := time.Since(start)
	if err != nil {
		b.Fatalf("Unpack(%s) = %v", path, err)
	}
	return d
}

func bsdtarOnce(b *testing.B, bsdtar, path string) time.Duration {
	dst, err := os.MkdirTemp(filepath.Dir(path), "bsdtar")
	if err != nil {
		b.Fatal(err)
	}
	defer removeAll(dst)
	var stderr bytes.Buffer
	cmd := exec.Command(bsdtar, "-xf", path, "-C", dst)
	cmd.Stderr = &stderr
	start := time.Now()
	err = cmd.Run()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("bsdtar -xf %s: %v: %s", path, err, &stderr)
	}
	return d
}
