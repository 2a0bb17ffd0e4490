package isolation

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"allium/internal/child"
	"allium/internal/testkit"
	"allium/supervisor/idmap"
)

// TestMain lets the test binary play the probe's child, as init does.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[0] == "init" && os.Args[1] == "probe" {
		os.Exit(ProbeMain(os.Args[2:], os.Stdout))
	}
	os.Exit(m.Run())
}

func probe(t *testing.T, opts Options) Report {
	t.Helper()
	if opts.Starter == nil {
		opts.Starter = testkit.Starter
	}
	// The default, /proc/self/exe: the user namespace's root, no one on
	// the node, may not walk to the test binary's 0700 build directory,
	// but may exec it through the magic link, as it does PID 1's.
	opts.Exe = ""
	return Probe(context.Background(), opts)
}

// As root on this machine the probe finds the namespaces rung at least,
// and pivot_root and overlayfs (its root is not an initramfs).
func TestProbeRoot(t *testing.T) {
	testkit.NeedRoot(t)
	r := probe(t, Options{})
	for _, name := range []string{"mount", "pid", "uts", "ipc", "pivot_root", "overlayfs"} {
		if c, _ := r.Check(name); !c.OK {
			t.Errorf("check %s = %+v, want it allowed", name, c)
		}
	}
	if r.Highest < Namespaces {
		t.Errorf("highest = %v, want namespaces or more; checks %+v", r.Highest, r.Checks)
	}
	// Where user namespaces are allowed, one as a container gets it:
	// mapped to the first range, mounting its own /proc.
	if readSysctl("", "user/max_user_namespaces") != "0" && idsMapped("", idmap.Range{Base: idmap.First, Size: idmap.Size}) {
		for _, name := range []string{"user", "userns_mounts"} {
			if c, _ := r.Check(name); !c.OK {
				t.Errorf("check %s = %+v, want it allowed", name, c)
			}
		}
	}
	t.Logf("highest %v, cgroup %q, gaps %q", r.Highest, r.Cgroup, r.Gaps())
}

// Forced down: with user.max_user_namespaces=0 the clone of a user
// namespace fails and the probe says why. Where this machine's /proc/sys
// is read-only (a sandbox), the kernel's refusal is played by a Starter
// that fails CLONE_NEWUSER with ENOSPC, as the kernel does, and the
// sysctl is read from a root that says 0.
func TestProbeWithoutUserNamespaces(t *testing.T) {
	testkit.NeedRoot(t)
	const sysctl = "/proc/sys/user/max_user_namespaces"
	opts := Options{}
	if old, err := os.ReadFile(sysctl); err == nil && os.WriteFile(sysctl, []byte("0"), 0) == nil {
		t.Cleanup(func() { os.WriteFile(sysctl, old, 0) })
	} else {
		opts.Root = t.TempDir()
		os.MkdirAll(filepath.Join(opts.Root, "proc/sys/user"), 0o755)
		os.WriteFile(filepath.Join(opts.Root, "proc/sys/user/max_user_namespaces"), []byte("0\n"), 0o644)
		opts.Starter = child.StarterFunc(func(cmd *exec.Cmd) (<-chan unix.WaitStatus, error) {
			if cmd.SysProcAttr.Cloneflags&unix.CLONE_NEWUSER != 0 {
				return nil, &os.SyscallError{Syscall: "clone", Err: unix.ENOSPC}
			}
			return testkit.Starter.Start(cmd)
		})
	}
	r := probe(t, opts)
	if c, _ := r.Check("user"); c.OK || c.Why != "user.max_user_namespaces=0" {
		t.Errorf("check user = %+v, want refused with user.max_user_namespaces=0", c)
	}
	if r.Highest != Namespaces {
		t.Errorf("highest = %v, want namespaces", r.Highest)
	}
	if got := r.Missing(Userns); got != "user: user.max_user_namespaces=0" {
		t.Errorf("Missing(userns) = %q", got)
	}
}

// Without a cgroup hierarchy (a root that has none) the cgroups rung is
// missing, and the controllers say why.
func TestProbeWithoutCgroups(t *testing.T) {
	testkit.NeedRoot(t)
	r := probe(t, Options{Root: t.TempDir()})
	if r.Highest >= Cgroups || r.Cgroup != "" {
		t.Errorf("highest = %v, cgroup %q; want below cgroups, none", r.Highest, r.Cgroup)
	}
	if c, _ := r.Check("cgroup"); c.OK || c.Why == "" {
		t.Errorf("check cgroup = %+v, want refused with a reason", c)
	}
}

func TestProbeCeiling(t *testing.T) {
	testkit.NeedRoot(t)
	chroot := Chroot
	r := probe(t, Options{Ceiling: &chroot})
	if r.Highest != Chroot || r.Missing(Namespaces) != "the node is limited to chroot" {
		t.Errorf("highest = %v, Missing(namespaces) = %q; want chroot, the ceiling", r.Highest, r.Missing(Namespaces))
	}
}
