package cgroup

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fake is a cgroup filesystem in a temporary directory, laid out like
// /sys/fs/cgroup: the kernel's part (making a new group's files,
// refusing to remove a busy one, SIGKILL) is played by the kernel seam.
// Writes are not: a file holds what was last written to it.
type fake struct {
	t       *testing.T
	root    string
	version int
	absent  []string // files the fake kernel does not offer: "cgroup.kill", "memory.peak", ...
	killed  []int
	onKill  func(pid int) error // what SIGKILL does; nil: the process leaves its group
}

// v2Files are a new v2 group's files, by the controller that must be
// enabled in its parent ("" for the core files), with their contents.
var v2Files = map[string]map[string]string{
	"": {"cgroup.controllers": "", "cgroup.subtree_control": "", "cgroup.procs": "",
		"cgroup.events": "populated 0\nfrozen 0\n", "cgroup.freeze": "0", "cgroup.kill": "",
		"cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n"},
	"memory": {"memory.max": "max\n", "memory.min": "0\n", "memory.current": "0\n", "memory.peak": "0\n",
		"memory.swap.max": "max\n", "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n"},
	"pids": {"pids.max": "max\n", "pids.current": "0\n"},
	"cpu":  {"cpu.weight": "100\n", "cpu.max": "max 100000\n"},
	"io":   {"io.stat": "", "io.max": ""},
}

// v1Files are a new v1 group's files, by controller.
var v1Files = map[string]map[string]string{
	"memory": {"memory.limit_in_bytes": "9223372036854771712\n", "memory.memsw.limit_in_bytes": "9223372036854771712\n",
		"memory.soft_limit_in_bytes": "9223372036854771712\n", "memory.usage_in_bytes": "0\n",
		"memory.max_usage_in_bytes": "0\n", "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"},
	"pids":    {"pids.max": "max\n", "pids.current": "0\n"},
	"cpu":     {"cpu.shares": "1024\n"},
	"cpuacct": {"cpuacct.usage": "0\n"},
	"blkio":   {"blkio.throttle.io_service_bytes": "Total 0\n"},
	"freezer": {"freezer.state": "THAWED\n"},
}

// newFake lays out an empty cgroup filesystem of version 2 (the root
// offering offered) or 1 (a hierarchy for each of offered, where "a,b"
// is one hierarchy for two controllers, linked from both names).
func newFake(t *testing.T, version int, offered string, absent ...string) *fake {
	t.Helper()
	f := &fake{t: t, root: t.TempDir(), version: version, absent: absent}
	if version == 2 {
		f.write("cgroup.controllers", offered+"\n")
		f.write("cgroup.subtree_control", "")
		f.write("cgroup.procs", "1\n")
		return f
	}
	for _, m := range strings.Fields(offered) {
		f.write(m+"/cgroup.procs", "1\n")
		if strings.Contains(m, ",") {
			for _, c := range strings.Split(m, ",") {
				if err := os.Symlink(m, filepath.Join(f.root, c)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return f
}

// open opens the fake with its kernel, and a short settle time.
func (f *fake) open(base string) (*Hierarchy, error) {
	h, err := open(f.root, base, f.version, func(dir string) bool {
		st, err := os.Stat(dir)
		return err == nil && st.IsDir()
	})
	if h != nil {
		h.kernel = kernel{mkdir: f.mkdir, rmdir: f.rmdir, kill: f.kill, settle: 200 * time.Millisecond, poll: time.Millisecond}
	}
	return h, err
}

func (f *fake) mustOpen(base string) *Hierarchy {
	f.t.Helper()
	h, err := f.open(base)
	if err != nil {
		f.t.Fatalf("open(fake v%d, %q) = %v", f.version, base, err)
	}
	return h
}

// newGroup makes a fake, opens it with base /allium and creates the
// group name in it.
func newGroup(t *testing.T, version int, offered, name string, absent ...string) (*fake, *Group) {
	t.Helper()
	f := newFake(t, version, offered, absent...)
	g := f.mustOpen("/allium").Group(name)
	if err := g.Create(); err != nil {
		t.Fatalf("Create(%s) = %v", name, err)
	}
	return f, g
}

func (f *fake) path(rel string) string { return filepath.Join(f.root, filepath.FromSlash(rel)) }

func (f *fake) write(rel, s string) {
	f.t.Helper()
	p := f.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fake) read(rel string) string {
	f.t.Helper()
	b, err := os.ReadFile(f.path(rel))
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

// mkdir makes a group and its files, as the kernel does: on v2 the
// parent's subtree_control (which holds what was last written, "+memory
// +pids") is first read the kernel's way ("memory pids"), and only the
// controllers enabled there get files.
func (f *fake) mkdir(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	files := f.v1Files(dir)
	if f.version == 2 {
		files = f.v2Files(filepath.Dir(dir))
	}
	for name, s := range files {
		if !slices.Contains(f.absent, name) {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *fake) v2Files(parent string) map[string]string {
	ctl := filepath.Join(parent, "cgroup.subtree_control")
	b, err := os.ReadFile(ctl)
	if err != nil {
		f.t.Fatal(err)
	}
	var enabled []string
	for _, c := range strings.Fields(string(b)) {
		enabled = append(enabled, strings.TrimPrefix(c, "+"))
	}
	slices.Sort(enabled)
	enabled = slices.Compact(enabled)
	if norm := strings.Join(enabled, " ") + "\n"; norm != string(b) {
		os.WriteFile(ctl, []byte(norm), 0o644)
	}
	files := map[string]string{}
	for _, c := range append([]string{""}, enabled...) {
		for name, s := range v2Files[c] {
			files[name] = s
		}
	}
	files["cgroup.controllers"] = strings.Join(enabled, " ") + "\n"
	return files
}

// v1Files are the files of a new group in the hierarchy dir is in.
func (f *fake) v1Files(dir string) map[string]string {
	rel, _ := filepath.Rel(f.root, dir)
	mount, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
	real, err := filepath.EvalSymlinks(filepath.Join(f.root, mount))
	if err != nil {
		f.t.Fatal(err)
	}
	files := map[string]string{"cgroup.procs": "", "tasks": ""}
	for _, c := range strings.Split(filepath.Base(real), ",") {
		for name, s := range v1Files[c] {
			files[name] = s
		}
	}
	return files
}

// rmdir removes a group unless it holds a process or a group (EBUSY).
func (f *fake) rmdir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	busy := strings.TrimSpace(string(b)) != ""
	for _, e := range ents {
		busy = busy || e.IsDir()
	}
	if busy {
		return &fs.PathError{Op: "remove", Path: dir, Err: syscall.EBUSY}
	}
	return os.RemoveAll(dir)
}

// kill plays SIGKILL: onKill, else the process leaves every group.
func (f *fake) kill(pid int) error {
	f.killed = append(f.killed, pid)
	if f.onKill != nil {
		return f.onKill(pid)
	}
	f.leave(pid)
	return nil
}

// leave takes pid out of every cgroup.procs of the tree.
func (f *fake) leave(pid int) {
	filepath.WalkDir(f.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != "cgroup.procs" {
			return err
		}
		b, _ := os.ReadFile(p)
		var keep []string
		for _, s := range strings.Fields(string(b)) {
			if s != strconv.Itoa(pid) {
				keep = append(keep, s+"\n")
			}
		}
		return os.WriteFile(p, []byte(strings.Join(keep, "")), 0o644)
	})
}

// snapshot is every file of the tree, by its path under the root.
func (f *fake) snapshot() map[string]string {
	f.t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(f.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(f.root, p)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

// changes are the files whose content differs between two snapshots,
// with their new content ("<gone>" for a removed file).
func changes(before, after map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range after {
		if old, ok := before[k]; !ok || old != v {
			out[k] = v
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			out[k] = "<gone>"
		}
	}
	return out
}
