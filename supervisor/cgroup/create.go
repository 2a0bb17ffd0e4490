package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// v2's controllers, enabled for Allium's groups: the ones Open requires,
// then the ones enabled where offered.
var (
	v2Required = []string{"memory", "pids", "cpu"}
	v2Optional = []string{"io"}
)

// Create makes the group's directory (and its missing ancestors) in
// each hierarchy. On v2 it first enables memory, pids, cpu (and io when
// offered) in cgroup.subtree_control of the base's parent and of every
// directory from the base down to the group's parent, so that the group
// has their files. Those directories must hold no process (v2's "no
// internal processes" rule): the base and "containers" never do; only
// leaves such as "node" and "containers/web" get processes.
func (g *Group) Create() error {
	if g.err != nil {
		return g.err
	}
	if g.h.version == 2 {
		return g.createV2()
	}
	for _, d := range g.dirs() {
		if err := g.h.mkdirAll(d); err != nil {
			return err
		}
	}
	return nil
}

// createV2 walks from the base's parent down to the group, enabling
// the controllers in each directory before making the next.
func (g *Group) createV2() error {
	dir := filepath.Join(g.h.root, filepath.FromSlash(path.Dir(g.h.base)))
	if err := g.h.mkdirAll(dir); err != nil {
		return err
	}
	var parts []string
	if g.h.base != "/" {
		parts = append(parts, path.Base(g.h.base))
	}
	if g.name != "" {
		parts = append(parts, strings.Split(g.name, "/")...)
	}
	for _, part := range parts {
		if err := enable(dir); err != nil {
			return err
		}
		dir = filepath.Join(dir, part)
		if err := g.h.mkdirOne(dir); err != nil {
			return err
		}
	}
	return nil
}

// enable adds the controllers Allium's groups need to dir's
// cgroup.subtree_control, in one write, unless they are there already
// (a write to a directory that holds processes fails with EBUSY, even
// for a controller already enabled).
func enable(dir string) error {
	offered, err := readFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return err
	}
	file := filepath.Join(dir, "cgroup.subtree_control")
	enabled, err := readFile(file)
	if err != nil {
		return err
	}
	add, err := toEnable(strings.Fields(offered), strings.Fields(enabled))
	if err != nil {
		return &Error{Op: "enable", Path: file, Err: err}
	}
	if add == "" {
		return nil
	}
	return writeFile(file, add)
}

// toEnable is what to write to cgroup.subtree_control ("+memory +pids")
// given the controllers offered and those enabled.
func toEnable(offered, enabled []string) (string, error) {
	var add []string
	for _, c := range append(append([]string{}, v2Required...), v2Optional...) {
		switch {
		case slices.Contains(enabled, c):
		case slices.Contains(offered, c):
			add = append(add, "+"+c)
		case slices.Contains(v2Required, c):
			return "", fmt.Errorf("%w: %s not offered in cgroup.controllers (%q)", ErrMissingController, c, strings.Join(offered, " "))
		}
	}
	return strings.Join(add, " "), nil
}

// mkdirAll makes dir and its missing parents, each with the kernel's
// mkdir.
func (h *Hierarchy) mkdirAll(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := h.mkdirAll(parent); err != nil {
			return err
		}
	}
	return h.mkdirOne(dir)
}

// mkdirOne makes one directory; one that is there already is fine
// (Create is idempotent).
func (h *Hierarchy) mkdirOne(dir string) error {
	err := h.mkdir(dir)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return &Error{Op: "mkdir", Path: dir, Err: unwrapPath(err)}
	}
	return nil
}
