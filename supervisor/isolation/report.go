package isolation

import "strings"

// Check is one thing the probe tried, and what came of it.
type Check struct {
	// Name is what was tried: a namespace kind ("mount", "pid", "uts",
	// "ipc", "net", "user", "cgroupns"), "userns_mounts" (the root of a
	// user namespace mounts a tmpfs and a /proc of its own, which an OS
	// container's masked /proc can forbid), "private_mounts" (a mount
	// namespace whose mounts do not propagate to the node's),
	// "pivot_root", "overlayfs",
	// "cgroup", a cgroup controller ("memory", "pids", "cpu") or
	// "nftables".
	Name string `json:"name"`
	// OK is true when the kernel allowed it.
	OK bool `json:"ok"`
	// Why says, when it did not, what stopped it:
	// "user.max_user_namespaces=0", "EPERM", "no cgroup hierarchy
	// mounted or mountable".
	Why string `json:"why,omitempty"`
}

// needs are the checks each rung adds to the ones below it. pivot_root
// is not among them: where the root is the initramfs, which cannot be
// pivoted, the shim moves the container's root onto / instead.
var needs = [...][]string{
	Chroot:     nil,
	Namespaces: {"mount", "private_mounts", "pid", "uts", "ipc"},
	Userns:     {"user", "userns_mounts"},
	Cgroups:    {"cgroup", "memory", "pids", "cpu"},
}

// Report is what the probe found.
type Report struct {
	// Highest is the highest rung whose checks, and those of every rung
	// below, all passed (or the ceiling the node was given).
	Highest Rung `json:"highest"`
	// Ceiling, when set, is the rung the node was told not to go above
	// (allium.isolation= on the kernel command line, or a test).
	Ceiling *Rung `json:"ceiling,omitempty"`
	// Cgroup is the cgroup hierarchy found: "v2", "v1", or "".
	Cgroup string `json:"cgroup,omitempty"`
	// Checks are every check, in the order tried.
	Checks []Check `json:"checks"`
}

// Check returns the check of name, and false if it was not tried.
func (r Report) Check(name string) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// Has reports whether the check of name passed.
func (r Report) Has(name string) bool {
	c, ok := r.Check(name)
	return ok && c.OK
}

// highest is the highest rung whose needs, and those below, all pass,
// no higher than ceiling.
func (r Report) highest() Rung {
	top := Chroot
	for rung := Namespaces; int(rung) < len(needs); rung++ {
		if r.Ceiling != nil && rung > *r.Ceiling {
			break
		}
		if r.missing(rung) != "" {
			break
		}
		top = rung
	}
	return top
}

// missing says what keeps rung from running on this node: "" when
// nothing does, else the first failed check of rung or of a rung below
// it, as "name: why".
func (r Report) missing(rung Rung) string {
	for level := Namespaces; level <= rung && int(level) < len(needs); level++ {
		if why := r.lacks(needs[level]); why != "" {
			return why
		}
	}
	return ""
}

// lacks says which of the named checks failed first, as "name: why",
// or "" when they all passed.
func (r Report) lacks(names []string) string {
	for _, name := range names {
		c, tried := r.Check(name)
		switch {
		case !tried:
			return name + ": not tried"
		case !c.OK:
			return name + ": " + c.Why
		}
	}
	return ""
}

// CgroupsMissing says why the node cannot give containers cgroup limits
// (whatever its rung: limits apply at every rung), or "" when it can.
func (r Report) CgroupsMissing() string { return r.lacks(needs[Cgroups]) }

// Missing says why rung is above the node's highest: what failed, or
// the ceiling. It is "" for a rung the node has.
func (r Report) Missing(rung Rung) string {
	if rung <= r.Highest {
		return ""
	}
	if m := r.missing(rung); m != "" {
		return m
	}
	if r.Ceiling != nil && rung > *r.Ceiling {
		return "the node is limited to " + r.Ceiling.String()
	}
	return ""
}

// Gaps lists, for each rung above the highest, why it is missing:
// "userns: user: user.max_user_namespaces=0".
func (r Report) Gaps() []string {
	var out []string
	for rung := r.Highest + 1; int(rung) < len(needs); rung++ {
		out = append(out, rung.String()+": "+r.Missing(rung))
	}
	return out
}

// Unprotected says in words what a container at rung is not protected
// from, for `cloud info` and `cloud ps`: "" at the top rung.
func Unprotected(rung Rung) string { return UnprotectedAt(rung, rung >= Cgroups) }

// UnprotectedAt is Unprotected for a container at rung whose cgroup
// limits are (limited) or are not in force: they apply at every rung
// where the node has cgroups.
func UnprotectedAt(rung Rung, limited bool) string {
	var gaps []string
	if rung < Namespaces {
		gaps = append(gaps, "it sees the node's processes and can signal those of its own uid: kill -9 -1 from a root container reaches the other containers running as root (not PID 1 nor tor: it has no CAP_KILL)",
			"it shares the node's hostname, IPC and mounts")
	}
	if rung < Userns {
		gaps = append(gaps, "its root is the node's root (uid 0), only without capabilities")
	}
	if !limited {
		gaps = append(gaps, "nothing limits its memory, processes or CPU: a fork bomb or a memory hog can take the node down")
	}
	return strings.Join(gaps, "; ")
}
