package supervisor

import "errors"

// Sentinel errors; check them with errors.Is.
var (
	// ErrNotFound: no container by that name.
	ErrNotFound = errors.New("supervisor: no such container")
	// ErrExists: Add of a name the supervisor already has.
	ErrExists = errors.New("supervisor: container already exists")
	// ErrNotRunning: a signal for a container with no running workload.
	ErrNotRunning = errors.New("supervisor: not running")
	// ErrRemoved: the container was removed while the call waited.
	ErrRemoved = errors.New("supervisor: container removed")
	// ErrInvalidSpec: a Spec that cannot run (no name, a relative root,
	// no command).
	ErrInvalidSpec = errors.New("supervisor: invalid spec")
	// ErrUnknownUser: the manifest's user is not in the image's
	// /etc/passwd.
	ErrUnknownUser = errors.New("unknown user")
	// ErrNoNetwork: a container with a private network, and no
	// Options.Network to attach it.
	ErrNoNetwork = errors.New("supervisor: no network to attach a private network to")
	// ErrIsolation: the manifest needs a rung of the isolation ladder
	// this supervisor does not provide.
	ErrIsolation = errors.New("supervisor: isolation level not available")
	// ErrFrozen: an operation on a Supervisor frozen for a handover
	// (Freeze), until Thaw.
	ErrFrozen = errors.New("supervisor: frozen for a handover")
	// ErrHandover: a Frozen description Adopt cannot take, or a
	// container Freeze cannot describe.
	ErrHandover = errors.New("supervisor: handover")
)
