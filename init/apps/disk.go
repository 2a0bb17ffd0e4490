package apps

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"allium/state"
	"allium/supervisor"
	"allium/supervisor/idmap"
	"allium/supervisor/restart"
)

// diskRecord is what a container's root says of itself on the data
// disk, beside state.db: overlay/NAME/container.json, written when the
// root is prepared. When state.db lost the container (a recovery from
// a copy older than it, or a fresh start), Restore rebuilds its record
// from this; image collection never deletes the image it names.
type diskRecord struct {
	Name  string `json:"name"`
	Image string `json:"image"`
	// IDBase and IDSize are its range of host ids at the userns rung:
	// its writable layer and volumes are owned by them.
	IDBase  uint32    `json:"id_base,omitempty"`
	IDSize  uint32    `json:"id_size,omitempty"`
	Written time.Time `json:"written"`
}

func (r roots) recordFile(name string) string {
	return filepath.Join(r.overlay(name), "container.json")
}

// writeRecord writes name's disk record, fsync'd, by rename.
func (r roots) writeRecord(rec diskRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	path := r.recordFile(rec.Name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

func (r roots) readRecord(name string) (diskRecord, error) {
	var rec diskRecord
	b, err := os.ReadFile(r.recordFile(name))
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.Image == "" {
		return rec, fmt.Errorf("%s: unreadable (%v)", r.recordFile(name), err)
	}
	rec.Name = name
	return rec, nil
}

// onDisk lists the containers with a root or a writable layer on the
// data disk.
func (r roots) onDisk() []string {
	var names []string
	for _, dir := range []string{filepath.Join(r.data, "containers"), filepath.Join(r.data, "overlay")} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.IsDir() && !slices.Contains(names, e.Name()) {
				names = append(names, e.Name())
			}
		}
	}
	slices.Sort(names)
	return names
}

// diskImages maps the image of each container root on disk to the
// containers using it; unknown lists the roots whose image is not
// known (no disk record: made before there were any).
func (r roots) diskImages() (users map[string][]string, unknown []string) {
	users = map[string][]string{}
	for _, name := range r.onDisk() {
		rec, err := r.readRecord(name)
		if err != nil {
			unknown = append(unknown, name)
			continue
		}
		users[rec.Image] = append(users[rec.Image], name)
	}
	return users, unknown
}

// rebuild records again, from its root on disk, a container that
// state.db does not have, stopped: whether the operator wanted it
// running is not known. It returns what to tell the operator.
func (a *Service) rebuild(name string) string {
	rec, err := a.roots.readRecord(name)
	if err != nil {
		return fmt.Sprintf("container root %s is on disk but not in state.db, and its image is not known (%v); it was left alone: cloud rm %s removes it", name, err, name)
	}
	m, err := a.store.Manifest(rec.Image)
	if err != nil {
		return fmt.Sprintf("container %s is on disk but not in state.db, and its image %s is gone (%v); it was left alone: cloud rm %s removes it", name, rec.Image, err, name)
	}
	ids := idmap.Range{Base: rec.IDBase, Size: rec.IDSize}
	if err := a.add(name, rec.Image, m, restart.History{}, false, ids, state.BootLoop{}); err != nil {
		return fmt.Sprintf("container %s could not be rebuilt from its root on disk: %v", name, err)
	}
	a.log.Warn("apps: container rebuilt from its root on disk", "container", name, "image", rec.Image)
	return fmt.Sprintf("container %s was rebuilt from its root on disk (image %s); whether it should run was lost with state.db, so it is stopped: cloud start %s runs it", name, rec.Image, name)
}

// rebuildMissing rebuilds every container on disk that cs does not
// hold.
func (a *Service) rebuildMissing(cs []state.Container) (warnings []string) {
	for _, name := range a.roots.onDisk() {
		if !slices.ContainsFunc(cs, func(c state.Container) bool { return c.Name == name }) {
			warnings = append(warnings, a.rebuild(name))
		}
	}
	return warnings
}

// Resync is called after state.db was recovered while the node ran:
// a container the supervisor runs, or whose root is on disk, that the
// recovered state.db does not hold is recorded again (one the
// supervisor has keeps running as it is).
func (a *Service) Resync() (warnings []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cs, err := a.db.Containers()
	if err != nil {
		return []string{"containers after the recovery of state.db: " + err.Error()}
	}
	for _, name := range a.roots.onDisk() {
		if slices.ContainsFunc(cs, func(c state.Container) bool { return c.Name == name }) {
			continue
		}
		st, supervised := a.sup.Status(name)
		rec, rerr := a.roots.readRecord(name)
		if !supervised || rerr != nil {
			if !supervised {
				warnings = append(warnings, a.rebuild(name))
			}
			continue
		}
		running := st.State != supervisor.Stopped
		if err := a.db.PutContainer(state.Container{Name: name, Image: rec.Image, Running: running,
			IDBase: rec.IDBase, IDSize: rec.IDSize}); err != nil {
			warnings = append(warnings, fmt.Sprintf("container %s: recording it again: %v", name, err))
			continue
		}
		warnings = append(warnings, fmt.Sprintf("container %s was recorded again after the recovery of state.db, from the running node", name))
	}
	return warnings
}
