package api

import "time"

// Wire types of images, containers and events.
//
// Uploads are resumable and addressed by the archive's digest:
//
//	HEAD /v1/images/{digest}        200: the image is on the node (skip the upload)
//	                                404: not there; Upload-Offset: N says how many
//	                                bytes of an earlier upload the node kept
//	PUT  /v1/images/{digest}        body: the archive from byte Upload-Offset on,
//	                                headers Upload-Offset: N, Upload-Length: TOTAL.
//	                                409 + UploadState when N is not what the node
//	                                has (the body is also an Error, code
//	                                "upload_offset", and Upload-Offset says it too);
//	                                201 + Image once all TOTAL bytes are in,
//	                                the digest matched and the image unpacked;
//	                                202 + UploadState when the body ended before
//	                                TOTAL (the node keeps what came: send the rest).
//	GET  /v1/images                 []Image
//	GET  /v1/images/{digest}        Image
//	DELETE /v1/images/{digest}      204; 409 while a container uses it
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
//	GET    /v1/events?follow=1      application/x-ndjson, one Event per line

// Upload headers.
const (
	HeaderUploadOffset = "Upload-Offset"
	HeaderUploadLength = "Upload-Length"
)

// Image is an unpacked image on the node.
type Image struct {
	// Digest is "sha256:" and the hex sha256 of the archive as pushed.
	Digest string `json:"digest"`
	// Name is the manifest's name.
	Name string `json:"name"`
	// Size is the archive's size in bytes.
	Size int64 `json:"size"`
	// Created is when the node finished unpacking it.
	Created time.Time `json:"created"`
	// UsedBy names the containers that run it.
	UsedBy []string `json:"used_by,omitempty"`
}

// UploadState is where an upload stands.
type UploadState struct {
	Digest string `json:"digest"`
	// Offset is how many bytes the node has kept.
	Offset int64 `json:"offset"`
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
	// Error says why it is failed or why the last start failed.
	Error string `json:"error,omitempty"`
}

// Exit is how a run ended: an exit code or a signal.
type Exit struct {
	Code   int       `json:"code"`
	Signal string    `json:"signal,omitempty"`
	Time   time.Time `json:"time"`
}

// Event types.
const (
	EventStart     = "start"
	EventReady     = "ready"
	EventExit      = "exit"
	EventRestart   = "restart_scheduled"
	EventCrashloop = "crashloop"
	EventStop      = "stop"
	EventSignal    = "signal"
	EventRemove    = "remove"
	EventImage     = "image"
	EventError     = "error"
)

// Event is something that happened to a container or an image.
type Event struct {
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	Container string    `json:"container,omitempty"`
	Image     string    `json:"image,omitempty"`
	Message   string    `json:"message"`
	Exit      *Exit     `json:"exit,omitempty"`
}
