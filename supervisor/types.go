package supervisor

import (
	"fmt"
	"time"

	"allium/supervisor/restart"
)

// State is a container's state. Its String is the name on the wire
// (api.State*).
type State uint8

const (
	// Stopped: stopped by the operator, or never started. The zero
	// value.
	Stopped State = iota
	// Starting: started, waiting for its readiness probe.
	Starting
	// Running: running (and ready, if it has a probe).
	Running
	// Backoff: exited; a restart is scheduled.
	Backoff
	// Crashloop: failed too often; retrying slowly.
	Crashloop
	// Stopping: stop signal sent, waiting for the exit.
	Stopping
	// Exited: exited and will not be restarted (exit 125, policy).
	Exited
	// Failed: could not be started (the shim failed before exec: bad
	// user, root, workdir or command). Not retried until an operator
	// starts it again.
	Failed
	nStates
)

var stateNames = [nStates]string{
	Stopped: "stopped", Starting: "starting", Running: "running", Backoff: "backoff",
	Crashloop: "crashloop", Stopping: "stopping", Exited: "exited", Failed: "failed",
}

func (s State) String() string {
	if s < nStates {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", s)
}

// MarshalText makes a State marshal as its name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a State's name.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if n == string(b) {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("supervisor: unknown state %q", b)
}

// EventType is what an Event reports. The values are the wire's
// (api.Event*).
type EventType string

const (
	EventStart     EventType = "start"             // a run started; PID is set
	EventReady     EventType = "ready"             // the readiness probe passed
	EventExit      EventType = "exit"              // a run ended; Exit is set
	EventOOM       EventType = "oom"               // the run's memory limit was hit; before its exit
	EventRestart   EventType = "restart_scheduled" // a restart in Delay
	EventCrashloop EventType = "crashloop"         // a crashloop retry in Delay
	EventStop      EventType = "stop"              // a stop signal was sent
	EventSignal    EventType = "signal"            // the operator signalled the workload
	EventRemove    EventType = "remove"            // the container is gone
	EventError     EventType = "error"             // something failed; see Message
)

// Event is something that happened to a container. Every state change
// comes with one, and State is the state after it.
type Event struct {
	Time      time.Time
	Container string
	Type      EventType
	State     State
	Message   string
	// Exit is how the run ended (EventExit).
	Exit *restart.Exit
	// Delay is the wait before the next start (EventRestart,
	// EventCrashloop, and the EventError of a start the node lacked
	// the resources for).
	Delay time.Duration
	// PID is the workload's pid (EventStart, EventStop).
	PID int
	// History is the restart history after the event: persist it and
	// hand it back to Add after a reboot.
	History restart.History
}

// Status is a container as `cloud ps` shows it.
type Status struct {
	Name  string
	State State
	// PID is the workload's pid while it runs, else 0.
	PID int
	// Started is when the current run started; zero when none runs.
	Started time.Time
	// Restarts counts restarts after exits (History.Restarts).
	Restarts uint64
	// LastExit is how the last run ended; nil if none has.
	LastExit *restart.Exit
	// NextRestart is when a scheduled restart will happen; zero if
	// none is.
	NextRestart time.Time
	// Error says why it failed, or why the last start failed.
	Error string
	// LogsDropped counts log lines lost because writing failed.
	LogsDropped uint64
}
