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

// WorkloadNofile is a workload's soft open-files limit when its manifest
// names none (the shim sets it): the kernel's default, which systemd and
// Docker also give a service. Its hard limit is the node's.
const WorkloadNofile = 1024

// RaiseOpenFiles raises PID 1's soft open-files limit to its hard limit
// (fs.nr_open after RaiseHardLimits) and returns it: the node's own
// caps (on connections, on uploads), not a limit of a few thousand,
// decide what a flood may cost, and what is left above them is init's
// reserve. Workloads do not inherit it (setRlimits, WorkloadNofile).
func RaiseOpenFiles() (uint64, error) {
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
		return 0, os.NewSyscallError("getrlimit", err)
	}
	if l.Cur >= l.Max {
		return l.Cur, nil
	}
	want := l
	want.Cur = l.Max
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err != nil {
		return l.Cur, fmt.Errorf("raise the open-files limit from %d to %d: %w", l.Cur, l.Max, os.NewSyscallError("setrlimit", err))
	}
	return want.Cur, nil
}
