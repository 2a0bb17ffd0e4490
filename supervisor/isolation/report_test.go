package isolation

import (
	"strings"
	"testing"
)

func checks(fail map[string]string) []Check {
	var out []Check
	for _, n := range []string{"mount", "private_mounts", "pid", "uts", "ipc", "net", "user", "userns_mounts", "cgroupns", "pivot_root", "overlayfs", "cgroup", "memory", "pids", "cpu", "nftables"} {
		why, bad := fail[n]
		out = append(out, Check{Name: n, OK: !bad, Why: why})
	}
	return out
}

func TestHighest(t *testing.T) {
	ns := Namespaces
	tests := []struct {
		name    string
		fail    map[string]string
		ceiling *Rung
		want    Rung
		missing map[Rung]string
	}{
		{"everything", nil, nil, Cgroups, nil},
		{"no userns", map[string]string{"user": "user.max_user_namespaces=0"}, nil, Namespaces,
			map[Rung]string{Userns: "user: user.max_user_namespaces=0", Cgroups: "user: user.max_user_namespaces=0"}},
		{"a user namespace may not mount /proc", map[string]string{"userns_mounts": "mount /proc: EPERM"}, nil, Namespaces,
			map[Rung]string{Userns: "userns_mounts: mount /proc: EPERM"}},
		{"no pid namespace", map[string]string{"pid": "EPERM"}, nil, Chroot, map[Rung]string{Namespaces: "pid: EPERM"}},
		{"root not a mount point", map[string]string{"private_mounts": "EINVAL"}, nil, Chroot,
			map[Rung]string{Namespaces: "private_mounts: EINVAL"}},
		{"no memory controller", map[string]string{"memory": "not in cgroup.controllers"}, nil, Userns,
			map[Rung]string{Cgroups: "memory: not in cgroup.controllers"}},
		{"pivot_root is not needed", map[string]string{"pivot_root": "EINVAL"}, nil, Cgroups, nil},
		{"ceiling", nil, &ns, Namespaces, map[Rung]string{Userns: "the node is limited to namespaces"}},
	}
	for _, tt := range tests {
		r := Report{Checks: checks(tt.fail), Ceiling: tt.ceiling}
		r.Highest = r.highest()
		if r.Highest != tt.want {
			t.Errorf("%s: highest = %v, want %v", tt.name, r.Highest, tt.want)
		}
		for rung, want := range tt.missing {
			if got := r.Missing(rung); got != want {
				t.Errorf("%s: Missing(%v) = %q, want %q", tt.name, rung, got, want)
			}
		}
		if got := r.Missing(r.Highest); got != "" {
			t.Errorf("%s: Missing(highest) = %q, want none", tt.name, got)
		}
		if n := len(r.Gaps()); n != int(Cgroups-r.Highest) {
			t.Errorf("%s: Gaps = %q, want one per rung above %v", tt.name, r.Gaps(), r.Highest)
		}
	}
}

func TestUnprotected(t *testing.T) {
	if got := Unprotected(Chroot); !strings.Contains(got, "kill -9 -1") || !strings.Contains(got, "fork bomb") {
		t.Errorf("Unprotected(chroot) = %q, want the signals and the fork bomb named", got)
	}
	if got := Unprotected(Userns); strings.Contains(got, "kill") || !strings.Contains(got, "memory") {
		t.Errorf("Unprotected(userns) = %q", got)
	}
	if got := Unprotected(Cgroups); got != "" {
		t.Errorf("Unprotected(cgroups) = %q, want nothing", got)
	}
	if got := UnprotectedAt(Namespaces, true); got == "" || strings.Contains(got, "memory") {
		t.Errorf("UnprotectedAt(namespaces, limited) = %q, want the uid 0 gap only", got)
	}
}

// Cgroup limits do not wait for the rungs below cgroups: a node without
// user namespaces still has them.
func TestCgroupsMissing(t *testing.T) {
	r := Report{Checks: checks(map[string]string{"user": "EPERM"})}
	if got := r.CgroupsMissing(); got != "" {
		t.Errorf("CgroupsMissing without userns = %q, want none", got)
	}
	r = Report{Checks: checks(map[string]string{"user": "EPERM", "pids": "not in cgroup.controllers"})}
	if got := r.CgroupsMissing(); got != "pids: not in cgroup.controllers" {
		t.Errorf("CgroupsMissing without pids = %q", got)
	}
}
