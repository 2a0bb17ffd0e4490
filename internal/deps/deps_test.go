package deps

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// pkg is one package of the module, as the linux/amd64 build sees it.
type pkg struct {
	imports []string // direct, non-test
	deps    []string // everything it links
}

// list runs go list once over the module.
func list(t *testing.T) map[string]pkg {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command on PATH")
	}
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}|{{join .Imports " "}}|{{join .Deps " "}}`, "allium/...")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list allium/...: %v", err)
	}
	pkgs := map[string]pkg{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		pkgs[f[0]] = pkg{imports: strings.Fields(f[1]), deps: strings.Fields(f[2])}
	}
	return pkgs
}

// standard reports whether p is in the standard library.
func standard(p string) bool {
	return !strings.Contains(strings.Split(p, "/")[0], ".") && !strings.HasPrefix(p, "allium")
}

// decompressors are the packages that decode a compressed archive,
// Allium's unpacker among them. (net/http links compress/gzip and
// compress/flate for its transport; those are not counted.)
var decompressors = []string{
	"allium/imagestore/...", "github.com/mholt/archives/...", "github.com/klauspost/compress/...",
	"github.com/ulikunitz/xz/...", "github.com/mikelolasagasti/xz/...", "github.com/dsnet/compress/...",
	"github.com/pierrec/lz4/...", "github.com/andybalholm/brotli/...", "github.com/sorairolake/lzip-go/...",
	"github.com/minio/minlz/...", "github.com/bodgit/sevenzip/...", "github.com/nwaples/rardecode/...",
	"compress/bzip2", "compress/lzw", "compress/zlib",
}

// links reports the first of deps that pkgs names: a package path, or a
// tree of them as "path/...".
func links(deps []string, pkgs ...string) string {
	for _, d := range deps {
		for _, p := range pkgs {
			tree, ok := strings.CutSuffix(p, "/...")
			if d == p || ok && (d == tree || strings.HasPrefix(d, tree+"/")) {
				return d
			}
		}
	}
	return ""
}

// Each part links nothing it must not know of.
func TestPartsDoNotLink(t *testing.T) {
	pkgs := list(t)
	rules := []struct {
		pkg, why string
		not      []string
	}{
		{"allium/api", "the API's wire types and client link no decompressor", decompressors},
		{"allium/api", "the API knows nothing of how the node works", []string{"allium/supervisor/...", "allium/state",
			"allium/hiddenservice", "go.etcd.io/bbolt/..."}},
		// cloud reads an image's manifest before the upload with
		// mholt/archives (the dependency chosen for identifying formats
		// for users); it never links the node's unpacker. Through
		// hiddenservice it links the pure restart policy, not the
		// supervisor.
		{"allium/cloud", "cloud links none of the node's parts", []string{"allium/imagestore/...", "allium/supervisor",
			"allium/state", "allium/init/...", "go.etcd.io/bbolt/..."}},
		{"allium/supervisor", "the supervisor knows nothing of HTTP servers, tor, images or bbolt", []string{"allium/api",
			"allium/hiddenservice", "github.com/cretz/bine/...", "allium/state", "go.etcd.io/bbolt/...",
			"allium/imagestore", "testing"}},
		{"allium/imagestore", "the image store knows nothing of the supervisor, the API or bbolt", []string{"allium/supervisor/...",
			"allium/api", "allium/state", "go.etcd.io/bbolt/...", "allium/hiddenservice"}},
		{"allium/supervisor/restart", "the restart policy is pure", []string{"allium/internal/safe", "os/exec", "net"}},
		{"allium/init", "PID 1 links no test code", []string{"testing", "allium/internal/testkit", "allium/internal/tornet"}},
		// The install bundle's kexec helper lays out kexec_load's
		// segments with u-root; nothing else needs u-root, and the
		// helper needs nothing of Allium's.
		{"allium/init", "PID 1 does not kexec", []string{"github.com/u-root/u-root/..."}},
		{"allium/kexec", "the kexec helper stands alone", []string{"allium/..."}},
	}
	for _, r := range rules {
		p, ok := pkgs[r.pkg]
		if !ok {
			t.Errorf("go list: no package %s", r.pkg)
			continue
		}
		if d := links(p.deps, r.not...); d != "" {
			t.Errorf("%s links %s; want not: %s", r.pkg, d, r.why)
		}
	}
}

// The manifest is read by the client, the builder and the node: it
// imports only the standard library.
func TestManifestIsALeaf(t *testing.T) {
	for _, d := range list(t)["allium/manifest"].deps {
		if !standard(d) {
			t.Errorf("allium/manifest links %s; want the standard library only", d)
		}
	}
}

// state is the only package that imports bbolt.
func TestOnlyStateImportsBbolt(t *testing.T) {
	for name, p := range list(t) {
		if name != "allium/state" && slices.Contains(p.imports, "go.etcd.io/bbolt") {
			t.Errorf("%s imports go.etcd.io/bbolt; only allium/state may", name)
		}
	}
}

// The supervisor's direct imports outside the standard library: the
// manifest, the isolation ladder and its parts (restart policy,
// cgroups, id ranges), PID 1's panic guard and x/sys.
func TestSupervisorImports(t *testing.T) {
	allowed := []string{"allium/manifest", "allium/supervisor/restart", "allium/supervisor/isolation", "allium/supervisor/cgroup",
		"allium/supervisor/idmap",
		"allium/internal/safe", "allium/internal/child", "allium/internal/procstatus"}
	for _, p := range list(t)["allium/supervisor"].imports {
		if !standard(p) && !slices.Contains(allowed, p) && !strings.HasPrefix(p, "golang.org/x/sys/") {
			t.Errorf("supervisor imports %s; want only %v, golang.org/x/sys and the standard library", p, allowed)
		}
	}
}

// helperOnly are files linked into init whose goroutines run only in the
// `init unpack` helper process (or in tests), never in PID 1: a panic
// there kills the helper.
var helperOnly = []string{"imagestore/pipe.go", "imagestore/xzparallel.go", "internal/safe/safe.go"}

// Every goroutine PID 1 starts goes through internal/safe, which
// recovers a panic (a panic in PID 1 panics the kernel): no go statement
// in the code init links, but in safe itself and the helper's decoders.
func TestPID1GoroutinesAreSafe(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-f", `{{if not .Standard}}{{.Dir}}|{{join .GoFiles ","}}{{end}}`, "allium/init")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps allium/init: %v", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, line := range strings.Fields(string(out)) {
		dir, files, _ := strings.Cut(line, "|")
		rel, err := filepath.Rel(root, dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // not ours
		}
		for _, name := range strings.Split(files, ",") {
			if name == "" || slices.Contains(helperOnly, filepath.ToSlash(filepath.Join(rel, name))) {
				continue
			}
			f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if g, ok := n.(*ast.GoStmt); ok {
					t.Errorf("%s: a go statement in code PID 1 links; start it with safe.Go", fset.Position(g.Pos()))
				}
				return true
			})
		}
	}
}
