package isolation

import (
	"fmt"
	"strings"

	"allium/manifest"
)

// Rung is a level of the isolation ladder; each adds to the ones below.
// The zero value is Chroot, the floor.
type Rung int

const (
	// Chroot: chroot, uid/gid, no_new_privs, a dropped capability
	// bounding set, rlimits, its own session and process group.
	Chroot Rung = iota
	// Namespaces: new mount, pid, uts and ipc namespaces, pivot_root, a
	// private /proc and a minimal /dev; the shim is the container's
	// PID 1.
	Namespaces
	// Userns: container root mapped to an unprivileged host range.
	Userns
	// Cgroups: memory, pids and cpu limits; the whole cgroup killed on
	// stop.
	Cgroups
)

// Rungs are the ladder's names, lowest first, as the manifest's
// isolation.minimum spells them.
var Rungs = manifest.IsolationLevels

func (r Rung) String() string {
	if r < 0 || int(r) >= len(Rungs) {
		return fmt.Sprintf("rung(%d)", int(r))
	}
	return Rungs[r]
}

// ParseRung reads a rung's name.
func ParseRung(s string) (Rung, error) {
	for i, n := range Rungs {
		if strings.EqualFold(s, n) {
			return Rung(i), nil
		}
	}
	return 0, fmt.Errorf("isolation %q: want one of %s", s, strings.Join(Rungs, ", "))
}

// MarshalText writes the rung's name, for JSON and state.db.
func (r Rung) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads a rung's name.
func (r *Rung) UnmarshalText(b []byte) error {
	v, err := ParseRung(string(b))
	if err == nil {
		*r = v
	}
	return err
}
