package api

import "time"

// Wire types of containers:
//
//	PUT    /v1/containers/{name}    ContainerRequest: create, or replace with a new
//	                                image (stop old, start new; volumes carry over).
//	                                Idempotent: the same image again changes nothing.
//	GET    /v1/containers           []Container
//	GET    /v1/containers/{name}    Container
//	POST   /v1/containers/{name}/start|stop|restart
//	POST   /v1/containers/{name}/kill   SignalRequest: signal the workload's
//	                                process group; if it dies, the restart
//	                                policy applies (it is a crash, not a stop)
//	DELETE /v1/containers/{name}    stop and remove (volumes are kept)
//	GET    /v1/containers/{name}/logs?tail=N&follow=1
//	                                text/plain, one "RFC3339NANO STREAM LINE" per line
//	GET    /v1/containers/{name}/stats  ContainerStats, from its cgroup

// ContainerStats is what a container uses now, read from its cgroup:
// GET /v1/containers/{name}/stats. Cgroup is false (and the rest zero)
// on a node without cgroups, or for a container that has not run.
type ContainerStats struct {
	Name   string `json:"name"`
	Cgroup bool   `json:"cgroup"`
	// CPUSeconds is the CPU time used since the group was made.
	CPUSeconds float64 `json:"cpu_seconds"`
	// Memory and MemoryPeak are bytes, now and at most.
	Memory     uint64 `json:"memory"`
	MemoryPeak uint64 `json:"memory_peak"`
	Pids       int    `json:"pids"`
	// IORead and IOWrite are bytes of block I/O.
	IORead  uint64 `json:"io_read"`
	IOWrite uint64 `json:"io_write"`
	// OOMKills counts the kernel's OOM kills in the group.
	OOMKills uint64 `json:"oom_kills"`
}

// ContainerRequest is the body of PUT /v1/containers/{name}.
type ContainerRequest struct {
	// Image is the digest of an image already on the node.
	Image string `json:"image"`
}

// SignalRequest is the body of POST /v1/containers/{name}/kill.
type SignalRequest struct {
	// Signal is a name such as "SIGKILL" or "TERM"; "" means SIGKILL.
	Signal string `json:"signal,omitempty"`
}

// Container states.
const (
	StateStarting  = "starting"  // started, waiting for its readiness probe
	StateRunning   = "running"   // running (and ready, if it has a probe)
	StateBackoff   = "backoff"   // exited; a restart is scheduled
	StateCrashloop = "crashloop" // failed too often; retrying slowly
	StateStopping  = "stopping"  // stop signal sent, waiting
	StateStopped   = "stopped"   // stopped by the operator
	StateExited    = "exited"    // exited and will not be restarted (exit 125, policy)
	StateFailed    = "failed"    // could not be started (bad command, isolation)
)

// Container is a container on the node.
type Container struct {
	Name string `json:"name"`
	// Image is the digest of the image it runs.
	Image     string `json:"image"`
	ImageName string `json:"image_name"`
	State     string `json:"state"`
	// Desired is "running" or "stopped": what the operator asked for,
	// and what a boot restores.
	Desired string `json:"desired"`
	// PID is the workload's pid on the node while it runs, else 0.
	PID int `json:"pid,omitempty"`
	// Started is when the current run started (zero when not running).
	Started time.Time `json:"started,omitzero"`
	// Restarts counts restarts after failures (operator actions do
	// not count).
	Restarts uint64 `json:"restarts"`
	// LastExit is how the last run ended.
	LastExit *Exit `json:"last_exit,omitempty"`
	// NextRestart is when a scheduled restart will happen.
	NextRestart time.Time `json:"next_restart,omitzero"`
	// Isolation is the level the container actually got.
	Isolation string `json:"isolation,omitempty"`
	// Address is the container's address on the node's bridge
	// (isolation.network private); "" when it shares the node's network.
	Address string `json:"address,omitempty"`
	// IDs are the host uids and gids its ids 0-65535 are, "FIRST-LAST",
	// at the userns rung and above; "" below it (its ids are the node's).
	IDs string `json:"ids,omitempty"`
	// Error says why it is failed or why the last start failed.
	Error string `json:"error,omitempty"`
	// Held, when not "", says why the node did not start it at boot
	// although Desired is running: boot-loop protection, after the node
	// went down soon after its start at boots in a row. An operator's
	// start clears it.
	Held string `json:"held,omitempty"`
}

// Exit is how a run ended: an exit code or a signal.
type Exit struct {
	Code   int       `json:"code"`
	Signal string    `json:"signal,omitempty"`
	Time   time.Time `json:"time"`
	// OOM is true when the kernel's OOM killer ended the run: the
	// container reached its memory limit.
	OOM bool `json:"oom,omitempty"`
}

// LogOptions selects a container's log lines.
type LogOptions struct {
	// Tail is how many of the last lines to send first; negative
	// means all of them, and 0 none (with Follow: only new lines).
	Tail int
	// Follow keeps the stream open for new lines.
	Follow bool
}
