package api

import (
	"context"
	"io"
	"net/url"
)

// Wire types of updating a node in place (`cloud update`):
//
//	HEAD /v1/node/init/{digest}     where an upload of a new init stands, as
//	                                for images (upload.go): 200 when the node
//	                                has it staged, else 404 with Upload-Offset
//	GET  /v1/node/init/{digest}     InitInfo of the staged init; 404 otherwise
//	PUT  /v1/node/init/{digest}     a part of the upload, resumable as for
//	                                images; 201 + InitInfo once every byte is
//	                                in, the digest matched and the node checked
//	                                the init (a static ELF for its machine that
//	                                runs `init version --json` and can take
//	                                over its state); 400 naming what was wrong
//	                                otherwise, and nothing is kept; 413 over
//	                                MaxInitSize, before the body is sent
//
//	POST /v1/node/update            switch to the staged init (UpdateRequest):
//	                                202 + Accepted, then PID 1 re-executes
//	                                itself as it in place (containers keep
//	                                running); 409 with the reason when that
//	                                init is not staged or the node cannot
//	                                switch now. The node answers again, with
//	                                the new Version, once it took over.

// MaxInitSize caps an uploaded init's size, in bytes: the node refuses
// a longer one (413) before its body is sent.
const MaxInitSize = 64 << 20

// InitVersion is what an init binary says of itself, as one JSON object
// on stdout of `init version --json`.
type InitVersion struct {
	// Version is the build's version (main.version), e.g. "v0.3.0";
	// never empty.
	Version string `json:"version"`
	// StateSchema is the newest state.db schema it reads and writes
	// (state.SchemaVersion); at least 1.
	StateSchema int `json:"state_schema"`
	// Arch is its GOARCH: "amd64", "arm64".
	Arch string `json:"arch"`
	// Handover is the version of the protocol by which a running PID 1
	// hands the node over to a new one.
	Handover int `json:"handover"`
}

// InitInfo is an init the node received and checked: the answer to
// PUT /v1/node/init/{digest}.
type InitInfo struct {
	Digest string `json:"digest"`
	// Size is its length in bytes.
	Size int64 `json:"size"`
	InitVersion
}

// Update is the node's side of updates in place, in Node.
type Update struct {
	// StateSchema and Handover are the running init's (InitVersion):
	// a new init must understand StateSchema and speak Handover.
	StateSchema int `json:"state_schema"`
	Handover    int `json:"handover"`
	// Staged is the init the node received and checked last, which an
	// update would switch to; nil when there is none.
	Staged *InitInfo `json:"staged,omitempty"`
	// Refused says why the last init the node refused (since it booted)
	// was refused; "" when it refused none.
	Refused string `json:"refused,omitempty"`
	// Running is the running init's version.
	Running string `json:"running,omitempty"`
	// Previous is the version of the init this one took over from in
	// place; "" when it booted.
	Previous string `json:"previous,omitempty"`
	// Last says how the last switch since the boot ended, in words
	// ("took over from v1 at ..." or why a switch failed); "" when there
	// was none.
	Last string `json:"last,omitempty"`
}

// UpdateRequest is the body of POST /v1/node/update.
type UpdateRequest struct {
	// Digest is the staged init to switch to.
	Digest string `json:"digest"`
}

// Updater is the node's updates in place: what the handlers of
// /v1/node/init ask of it (server_update.go). Apps says how a method
// answers an error; Init answers NotFound for an init the node has not
// staged.
type Updater interface {
	// Init returns the staged init of digest.
	Init(ctx context.Context, digest string) (InitInfo, error)
	// InitOffset says how many bytes of an unfinished upload of the
	// init of digest the node has kept: 0 when it has none.
	InitOffset(ctx context.Context, digest string) (int64, error)
	// PutInit is PutImage's counterpart for an init: it appends body,
	// the init from byte offset on, to the upload of digest, whose
	// init has total bytes (at most MaxInitSize). Once all total bytes
	// are in, it checks the digest and the init, stages it and returns
	// it; a refused init is removed, and the error says why.
	PutInit(ctx context.Context, digest string, offset, total int64, body io.Reader) (InitInfo, error)
	// SwitchInit starts the switch to the staged init of digest and
	// returns at once, saying what it does: the switch happens after
	// the answer. An error (409) says why the node cannot switch.
	SwitchInit(ctx context.Context, digest string) (string, error)
}

// UnimplementedUpdater answers every request about updates with 501. A
// Backend that does not take new inits, such as a test's, embeds it.
type UnimplementedUpdater struct{}

var errNoUpdates = NotImplemented("this node does not take new inits")

func (UnimplementedUpdater) Init(context.Context, string) (InitInfo, error) {
	return InitInfo{}, errNoUpdates
}
func (UnimplementedUpdater) InitOffset(context.Context, string) (int64, error) {
	return 0, errNoUpdates
}
func (UnimplementedUpdater) PutInit(context.Context, string, int64, int64, io.Reader) (InitInfo, error) {
	return InitInfo{}, errNoUpdates
}

func (UnimplementedUpdater) SwitchInit(context.Context, string) (string, error) {
	return "", errNoUpdates
}

func initPath(digest string) string { return "/v1/node/init/" + url.PathEscape(digest) }
