package apps

import (
	"context"
	"os"
	"time"

	"allium/supervisor"
)

// A handover in place (init's re-exec): the old init freezes the
// supervision, the new one adopts it (supervisor/handover.go has the
// contract). state.db already holds every container's record; only what
// is happening now crosses the execve.

// Freeze freezes the supervisor and waits (up to a few seconds) for the
// events it reported before to be recorded.
func (a *Service) Freeze(ctx context.Context) (supervisor.Frozen, []*os.File, error) {
	f, files, err := a.sup.Freeze(ctx)
	if err != nil {
		return f, nil, err
	}
	a.events.drain(2 * time.Second)
	return f, files, nil
}

// Thaw undoes Freeze, when the execve did not happen.
func (a *Service) Thaw() { a.sup.Thaw() }

// Adopt puts the containers the old init froze under this Service's
// supervisor (UseCgroups first, where the old one had cgroups). It is
// Restore's counterpart after a handover.
func (a *Service) Adopt(f supervisor.Frozen, files []*os.File) error {
	err := a.sup.Adopt(f, files)
	a.log.Info("apps: containers adopted", "count", len(f.Containers))
	return err
}
