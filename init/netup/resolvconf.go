package netup

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// maxNameservers is how many nameserver lines the C libraries read
// (MAXNS in glibc and musl). Later ones would be ignored anyway.
const maxNameservers = 3

// resolvConf is the content of resolv.conf.
type resolvConf struct {
	origin string // who says so, for the comment: "static on eth0"
	dns    []netip.Addr
	search string // a domain from DHCP option 15; "" for none
}

// render returns the file's text.
func (r resolvConf) render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by allium netup (%s).\n", r.origin)
	if len(r.dns) == 0 {
		b.WriteString("# No DNS servers were given.\n")
	}
	for _, a := range r.dns[:min(len(r.dns), maxNameservers)] {
		fmt.Fprintf(&b, "nameserver %s\n", a)
	}
	if r.search != "" {
		fmt.Fprintf(&b, "search %s\n", r.search)
	}
	return b.String()
}

// writeFileAtomic replaces path with data through a temporary file in the
// same directory and a rename, so a reader never sees half a file.
func writeFileAtomic(path, data string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	_, err = f.WriteString(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// writeResolvConf writes r to path, with the operation in the error.
func writeResolvConf(path string, r resolvConf) error {
	if err := writeFileAtomic(path, r.render()); err != nil {
		return fmt.Errorf("netup: write %s: %w", path, err)
	}
	return nil
}

// validDomain accepts a search domain that is safe to write into
// resolv.conf: a DHCP server's option 15 is outside input, and a newline
// in it would add lines of its own.
func validDomain(d string) bool {
	if d == "" || len(d) > 253 || !isAlnum(d[0]) {
		return false
	}
	for i := 0; i < len(d); i++ {
		if !isAlnum(d[i]) && d[i] != '-' && d[i] != '.' {
			return false
		}
	}
	return true
}
