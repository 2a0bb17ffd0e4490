package supervisor

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// RaiseHardLimits raises PID 1's hard limits, which every shim inherits,
// to what the kernel allows: open files to fs.nr_open (read from
// nrOpen, /proc/sys/fs/nr_open), locked memory to unlimited. Soft
// limits stay (Go's os/exec gives children the soft open-files limit
// the process started with). A container's rlimits can then be set at
// every rung: in a user namespace the shim may lower a hard limit but
// never raise one (that takes CAP_SYS_RESOURCE on the node), so a
// manifest's nofile above the kernel's default hard limit of 4096
// would otherwise fail there.
func RaiseHardLimits(nrOpen string) error {
	n := uint64(1 << 20)
	if b, err := os.ReadFile(nrOpen); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			n = v
		}
	}
	var errs []string
	for _, l := range []struct {
		name string
		res  int
		max  uint64
	}{{"nofile", unix.RLIMIT_NOFILE, n}, {"memlock", unix.RLIMIT_MEMLOCK, unix.RLIM_INFINITY}} {
		var cur unix.Rlimit
		if err := unix.Getrlimit(l.res, &cur); err != nil || cur.Max >= l.max {
			continue
		}
		cur.Max = l.max
		if err := unix.Setrlimit(l.res, &cur); err != nil {
			errs = append(errs, fmt.Sprintf("%s to %d: %v", l.name, l.max, err))
		}
	}
	if errs != nil {
		return fmt.Errorf("raise the hard limits: %s", strings.Join(errs, "; "))
	}
	return nil
}
