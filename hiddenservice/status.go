package hiddenservice

import "time"

// State is where the tor supervisor is; its string is the wire name
// `cloud info` shows.
type State string

// The states of a Process.
const (
	// StateStarting: tor is being started.
	StateStarting State = "starting"
	// StateConnecting: tor runs; its control socket is not open yet.
	StateConnecting State = "connecting"
	// StatePublishing: ADD_ONION sent; waiting for the descriptor.
	StatePublishing State = "publishing"
	// StateRunning: tor runs under control (see Status.Published).
	StateRunning State = "running"
	// StateBackoff: tor is down and waits to be restarted.
	StateBackoff State = "backoff"
	// StateCrashLoop: like StateBackoff, after too many failures in a
	// row (Policy.Burst within Policy.Window; TorPolicy: 5 in 10 min).
	StateCrashLoop State = "crashloop"
	// StateStopped: Run has returned, or has not been called.
	StateStopped State = "stopped"
)

// Status is what the supervisor knows of tor, for `cloud info` and the
// console.
type Status struct {
	State State `json:"state"`
	// Since is when State was entered.
	Since time.Time `json:"since"`
	// PID is tor's process ID; 0 when it is not running.
	PID int `json:"pid,omitempty"`
	// Starts counts the tor processes started (restarts are Starts-1).
	Starts int `json:"starts"`
	// Bootstrap is tor's progress joining the network, in percent, and
	// its phase in words.
	Bootstrap        int    `json:"bootstrap"`
	BootstrapSummary string `json:"bootstrap_summary,omitempty"`
	// Onion is the service's address; empty without a Service.
	Onion string `json:"onion,omitempty"`
	// Published is true once a descriptor of the current onion has
	// reached an HSDir; it goes false at each ADD_ONION.
	Published bool `json:"published"`
	// PublishedAt is when that last happened.
	PublishedAt time.Time `json:"published_at,omitzero"`
	// NextStart is when a tor in backoff will be started again.
	NextStart time.Time `json:"next_start,omitzero"`
	// LastExit is how the last tor ended: "exit 1", "killed by SIGKILL".
	LastExit string `json:"last_exit,omitempty"`
	// LastError is the last thing that went wrong, in words: a missing
	// binary, a refused onion, a control socket that never opened, a
	// bootstrap warning. Cleared when the onion is published.
	LastError string `json:"last_error,omitempty"`
	// ClockSkew is set when tor reports that the node's clock is off,
	// which keeps tor from joining the network.
	ClockSkew string `json:"clock_skew,omitempty"`
}
