package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// init must stay lean and static: these are the only modules it may pull
// in beside the standard library and its own packages. Adding one is a
// decision to write down in doc.go, then here.
var allowedModules = []string{
	"allium/",
	"golang.org/x/sys/",
	"golang.org/x/net/",  // dhcp raw sockets use x/net/bpf
	"golang.org/x/sync/", // mdlayher/socket uses errgroup
	"go.etcd.io/bbolt",
	"github.com/vishvananda/netlink",
	"github.com/vishvananda/netns",
	"github.com/google/nftables",  // private networks' NAT and published ports, without shelling out to nft
	"github.com/mdlayher/netlink", // nftables' netlink transport
	"github.com/insomniacslk/dhcp",
	"github.com/u-root/uio",       // dhcp's wire encoding
	"github.com/josharian/native", // dhcp's byte order
	"github.com/pierrec/lz4",      // dhcp -> uio
	"github.com/mdlayher/packet",  // dhcp's raw socket
	"github.com/mdlayher/socket",  // dhcp's raw socket
	// imagestore: the `init unpack` helper identifies and decodes every
	// compression mholt/archives knows; it registers all its formats, so
	// all of these link in (about 3 MB of the binary).
	"github.com/mholt/archives",
	"github.com/klauspost/",
	"github.com/ulikunitz/xz",
	"github.com/mikelolasagasti/xz",
	"github.com/dsnet/compress",
	"github.com/andybalholm/brotli",
	"github.com/sorairolake/lzip-go",
	"github.com/minio/minlz",
	"github.com/bodgit/",
	"github.com/nwaples/rardecode",
	"github.com/STARRY-S/zip",
	"github.com/hashicorp/golang-lru",
	"github.com/spf13/afero",
	"go4.org/readerutil",
	"golang.org/x/text/",
	// hiddenservice: tor's control protocol (replies, SAFECOOKIE, events);
	// its torutil brings an ed25519 and x/crypto's sha3 along.
	"github.com/cretz/bine/control",
	"github.com/cretz/bine/torutil",
	"golang.org/x/crypto/ed25519",
	"golang.org/x/crypto/sha3",
}

// forbidden packages: testing code (the standard library's and Allium's
// test-only packages), cgo, debug servers. (expvar links in through
// archives -> go4.org/readerutil; it registers /debug/vars on
// http.DefaultServeMux, which the API never serves.)
var forbiddenPackages = []string{
	"testing", "allium/internal/testkit", "allium/internal/testbin", "allium/internal/tornet",
	"runtime/cgo", "net/http/pprof", "plugin",
}

func TestInitImports(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}|{{.ImportPath}}", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // as `make build` builds it
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		nonStd, path, _ := strings.Cut(line, "|")
		for _, f := range forbiddenPackages {
			if path == f {
				t.Errorf("init imports %s", path)
			}
		}
		if nonStd != "" && !allowed(nonStd) {
			t.Errorf("init imports %s, which is not in allowedModules", nonStd)
		}
	}
}

func allowed(path string) bool {
	for _, m := range allowedModules {
		if strings.HasPrefix(path, m) {
			return true
		}
	}
	return false
}

func TestInitIsStatic(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "init")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("init has a %v program header: it is dynamically linked", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("init needs shared libraries %v", libs)
	}
}
