// Package api is Allium's control API: the JSON wire types, the HTTP
// handlers PID 1 serves on every listener, the Go client the `cloud` CLI
// uses, and authentication (TLS 1.3 with ed25519 keys pinned both ways,
// and peer credentials on the unix socket).
//
// It also owns the client's configuration directory (the client key and
// the node aliases mkimage writes), because that is the client half of
// authentication.
//
// Every field of a wire type is part of the API: add, never rename.
//
// api knows nothing of how the node does what it is asked: the server is
// handed a Backend. It does not import bbolt, the supervisor or tor.
package api
