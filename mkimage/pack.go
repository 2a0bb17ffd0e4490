package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"allium/manifest"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// packFlags are the flags of `mkimage pack`.
type packFlags struct {
	manifestFlags
	out       string
	binary    string
	compress  choiceFlag
	owner     ownerFlag
	blockSize blockSizeFlag
}

func newPackCmd() *cobra.Command {
	f := &packFlags{compress: choiceFlag{choices: packCompressionNames()}}
	cmd := &cobra.Command{
		Use:   "pack {DIR | --binary PROGRAM} -o IMAGE [--cmd COMMAND] [flags]",
		Short: "Make a container image from a directory or from one program",
		Long: `pack makes a native container image, which 'cloud start' pushes to a node: a
tar whose first entry is manifest.json (the command, env, user, restart
policy, volumes, ports, readiness probe...) followed by rootfs/, the tree the
container sees as /.

From a directory, DIR becomes rootfs/ as it is: files, directories,
symlinks, hard links and modes (rootfs/ itself is always 0755). Owners
become 0:0 unless --owner says otherwise; sockets are skipped; device nodes
need --allow-devices and setuid/setgid bits --allow-setuid, which the node
must allow too.

With --binary, the image holds PROGRAM at its own path, the dynamic loader
and shared libraries it needs (read from its ELF headers: PT_INTERP,
DT_NEEDED, RUNPATH/RPATH and the system library directories; no ldd), the
symlinks on their paths, /etc/passwd and /etc/group (root, nobody) and
/tmp. --cmd defaults to PROGRAM. A static program needs nothing else.

The compression follows IMAGE's name: ` + extensionNames() + `
(or --compress). xz and zstd are written as independent blocks of
--block-size (default: 1M for xz, 4M for zstd), which readers can decompress
in parallel. The output is
reproducible: sorted entries, numeric owners, and, when SOURCE_DATE_EPOCH is
set, no mtime later than it. It is written beside IMAGE and renamed over it
when complete.`,
		Example: `  # A directory holding a static busybox, serving HTTP on 8080:
  mkimage pack ./rootfs -o web.txz --cmd "/bin/busybox httpd -f -p 8080 -h /www" \
      --port 8080 --ready-tcp 8080
  cloud start web1 web.txz

  # One dynamically linked program and its libraries, run as nobody:
  mkimage pack --binary /usr/bin/redis-server -o redis.tar.zst \
      --cmd '["/usr/bin/redis-server", "--port", "6379"]' --user nobody \
      --volume data:/data --workdir /data

  # Start from a manifest, override its environment:
  mkimage pack ./app -o app.tgz --manifest app.json --env LOG_LEVEL=debug`,
		Args: cobra.MaximumNArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			return f.run(cmd.Flags(), args, cmd.OutOrStdout(), cmd.ErrOrStderr())
		}),
	}
	f.register(cmd)
	return cmd
}

func (f *packFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVarP(&f.out, "output", "o", "", "the image to write, e.g. app.txz (required)")
	fl.StringVar(&f.binary, "binary", "", "pack this program and the libraries it needs instead of a directory")
	f.manifestFlags.register(fl)
	fl.Var(&f.compress, "compress", "the compression (default: from the output's name)")
	fl.Var(&f.owner, "owner", "the owner of every entry, or 'keep' for the owners on disk")
	fl.Var(&f.blockSize, "block-size", "uncompressed size of each independent xz block or zstd frame (default 1M for xz, 4M for zstd)")
	cmd.MarkFlagsMutuallyExclusive("ready-tcp", "ready-http")
}

// pack carries one `mkimage pack` from step to step.
type pack struct {
	f        *packFlags
	fl       *pflag.FlagSet
	dir      string // DIR, or "" for --binary
	prog     string // --binary, made absolute
	method   string
	base     string // the output's name without extensions
	policy   entryPolicy
	manifest []byte
	m        *manifest.Manifest
	nodes    []node
	deps     elfDeps
	written  countWriter
	blocks   int
}

func (f *packFlags) run(fl *pflag.FlagSet, args []string, stdout, stderr io.Writer) error {
	p := &pack{f: f, fl: fl, policy: entryPolicy{owner: f.owner.owner(), warn: &warnings{}}}
	if err := p.check(args); err != nil {
		return err
	}
	def := manifestDefaults{name: strings.ToLower(p.base)}
	if p.prog != "" {
		def.command = []string{p.prog}
	}
	var err error
	if p.manifest, p.m, err = f.buildManifest(fl, def); err != nil {
		return err
	}
	p.policy.allowSetuid, p.policy.allowDevices = p.m.Allow.Setuid, p.m.Allow.Devices
	if err := p.write(); err != nil {
		return err
	}
	for _, w := range p.policy.warn.lines() {
		fmt.Fprintf(stderr, "mkimage: warning: %s\n", w)
	}
	p.summary(stdout)
	return nil
}

// check validates what the flags cannot check alone.
func (p *pack) check(args []string) (err error) {
	f := p.f
	if f.out == "" {
		return usagef("-o/--output is required: the image to write, e.g. -o app.txz")
	}
	if (len(args) == 1) == (f.binary != "") {
		return usagef("give a directory or --binary PROGRAM (one of them)")
	}
	if len(args) == 1 {
		p.dir = args[0]
	} else if p.prog, err = filepath.Abs(f.binary); err != nil {
		return fmt.Errorf("--binary: %w", err)
	}
	if err := p.chooseCompression(); err != nil {
		return err
	}
	p.policy.epoch, err = sourceDateEpoch()
	return err
}

func (p *pack) chooseCompression() error {
	base, method, ok := compressionOf(filepath.Base(p.f.out))
	p.base, p.method = base, method
	if p.f.compress.value != "" {
		p.method = p.f.compress.value
		return nil
	}
	if !ok {
		return usagef("-o %s: cannot tell the compression from the name: end it in one of %s, or pass --compress", p.f.out, extensionNames())
	}
	return nil
}

// sourceDateEpoch reads SOURCE_DATE_EPOCH (reproducible-builds.org):
// zero when unset.
func sourceDateEpoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, usagef("SOURCE_DATE_EPOCH=%q: want a number of seconds since 1970, or unset it", s)
	}
	return time.Unix(n, 0), nil
}

// write collects the nodes and writes the image through a temporary
// file, skipping that file if it is inside DIR.
func (p *pack) write() error {
	out, err := createOut(p.f.out)
	if err != nil {
		return err
	}
	defer out.discard()
	ino, err := out.inode()
	if err != nil {
		return err
	}
	p.policy.skip = map[inode]bool{ino: true}
	if fi, err := os.Stat(p.f.out); err == nil {
		p.policy.skip[inodeOf(fi)] = true // the previous image, if DIR holds it
	}
	if err := p.collect(); err != nil {
		return err
	}
	return out.write(p.fill)
}

func (p *pack) collect() (err error) {
	if p.prog != "" {
		p.nodes, p.deps, err = binaryRoot("/", p.prog, &p.policy)
		return err
	}
	if p.nodes, err = walkTree(p.dir, &p.policy); errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("pack %s: %w: every file must be readable; run mkimage as their owner or fix the modes", p.dir, err)
	}
	if err != nil {
		return fmt.Errorf("pack %s: %w", p.dir, err)
	}
	// A DIR from mktemp -d is 0700, which would lock every user but
	// root out of the container.
	p.nodes[0].hdr.Mode = 0o755
	return nil
}

// fill writes the compressed tar to w.
func (p *pack) fill(w io.Writer) error {
	p.written = countWriter{w: w}
	zw, err := packCompressors[p.method](&p.written, int(p.f.blockSize))
	if err != nil {
		return fmt.Errorf("%s: %w", p.method, err)
	}
	err = writeImage(zw, p.manifest, p.policy.madeTime(), p.nodes)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if bw, ok := zw.(*blockWriter); ok {
		p.blocks = bw.blocks()
	}
	return err
}

// summary tells the user what was written and how to run it.
func (p *pack) summary(w io.Writer) {
	how := p.method
	if p.blocks == 1 {
		how += ", 1 block"
	} else if p.blocks > 1 {
		how += fmt.Sprintf(", %d blocks", p.blocks)
	}
	fmt.Fprintf(w, "%s: %s (%s), %d entries\n", p.f.out, humanSize(p.written.n), how, len(p.nodes)+1)
	fmt.Fprintf(w, "  name     %s\n  command  %s\n", p.m.Name, strings.Join(quoteArgs(p.m.Command), " "))
	if p.prog != "" {
		fmt.Fprintf(w, "  program  %s, %s\n", p.prog, p.depsNote())
	}
	fmt.Fprintf(w, "next:\n  cloud start HOST %s\n", shellQuote(p.f.out))
}

func (p *pack) depsNote() string {
	if p.deps.interp == "" {
		return "static"
	}
	var names []string
	for _, l := range p.deps.libs {
		names = append(names, filepath.Base(l))
	}
	return fmt.Sprintf("loader %s, libraries: %s", p.deps.interp, strings.Join(names, " "))
}

func quoteArgs(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = shellQuote(a)
	}
	return out
}

// ownerFlag is --owner: UID:GID for every entry, or "keep".
type ownerFlag struct {
	keep     bool
	uid, gid int
}

func (o *ownerFlag) Set(v string) error {
	if v == "keep" {
		*o = ownerFlag{keep: true}
		return nil
	}
	u, g, ok := strings.Cut(v, ":")
	uid, err1 := strconv.ParseUint(u, 10, 31)
	gid, err2 := strconv.ParseUint(g, 10, 31)
	if !ok || err1 != nil || err2 != nil {
		return fmt.Errorf("%q: want UID:GID (e.g. 0:0) or keep", v)
	}
	*o = ownerFlag{uid: int(uid), gid: int(gid)}
	return nil
}

func (o *ownerFlag) String() string {
	if o.keep {
		return "keep"
	}
	return fmt.Sprintf("%d:%d", o.uid, o.gid)
}

func (o *ownerFlag) Type() string { return "UID:GID|keep" }

// owner is the entryPolicy's owner: nil to keep the owners on disk.
func (o *ownerFlag) owner() *[2]int {
	if o.keep {
		return nil
	}
	return &[2]int{o.uid, o.gid}
}

// blockSizeFlag is --block-size, between 64K and 256M.
type blockSizeFlag int64

func (b *blockSizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	if n < 64<<10 || n > 256<<20 {
		return fmt.Errorf("%s: want 64K to 256M", v)
	}
	*b = blockSizeFlag(n)
	return nil
}

func (b *blockSizeFlag) String() string { return formatSize(int64(*b)) }

func (b *blockSizeFlag) Type() string { return "size" }
