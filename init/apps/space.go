package apps

import (
	"allium/api"
	"allium/imagestore"
)

// StateReserve is the space kept allocated past state.db's end
// (imagestore.Preallocate), so that state.db can still be written, and
// grow once, on a data disk with no byte free: a few times what a node
// with hundreds of containers writes to it, and one doubling of bbolt's
// file below 16 MiB.
const StateReserve = 16 << 20

// keepStateReserve restores state.db's reserve: at start, and whenever
// space may have come back (an image removed or collected). On a full
// disk it fails, and is tried again next time.
func (a *Service) keepStateReserve() {
	if err := imagestore.Preallocate(a.db.Path(), StateReserve); err != nil {
		a.log.Warn("apps: state.db's reserve", "err", err)
		a.stateReserve.Store(false)
		return
	}
	a.stateReserve.Store(true)
}

// Disk is the data disk's space, for GET /v1/node; nil when the data
// root cannot be read.
func (a *Service) Disk() *api.Disk {
	d, err := a.store.Disk()
	if err != nil {
		a.log.Warn("apps: the data disk's space", "err", err)
		return nil
	}
	out := &api.Disk{Total: d.Total, Free: d.Free, Files: d.Files, FilesFree: d.FilesFree, Uploading: d.Reserved, Floor: d.Floor}
	if ps, err := a.store.Partials(); err == nil {
		for _, p := range ps {
			out.Partial += p.Size
		}
	}
	if a.stateReserve.Load() {
		out.StateReserve = StateReserve
	}
	return out
}
