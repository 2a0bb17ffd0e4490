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
// handed a Backend. It does not import bbolt, the supervisor, the image
// store or tor, and links no decompressor (internal/deps tests it): the
// image format it names is package manifest's.
//
// # Files
//
// Each concern has its wire types and endpoint table in X.go, the
// handlers with the part of Backend they call in server_X.go, and the
// Client's methods in client_X.go:
//
//	node        node.go, server_node.go, client_node.go: identity,
//	            reboot and poweroff, the TCP switch
//	images      images.go, server_images.go (ImageStore), client_images.go
//	upload      the resumable upload of an image: upload.go (the
//	            protocol), server_upload.go (HEAD and PUT),
//	            client_upload.go (Client.Upload, which resumes on its own)
//	containers  containers.go, server_containers.go (ContainerStore,
//	            logs included), client_containers.go
//	events      events.go, server_events.go (EventLog), client_events.go
//	keys        the authorized client keys: keys.go, server_keys.go
//	            (KeyStore), client_keys.go
//
// What they share:
//
//	server.go          Backend, Apps, Server, the route table, the listeners
//	server_auth.go     client keys and roles on the TLS listeners
//	server_limit.go    what a connection may cost: caps overall and per
//	                   source, the reserve for authorized keys, deadlines
//	peercred_linux.go  root only on the unix socket
//	server_json.go     JSON requests and answers, errors with their status
//	server_stream.go   followed text and ndjson streams
//	unimplemented.go   UnimplementedApps and UnimplementedKeys (501)
//	client.go          Client, its transports, requests and streams
//	errors.go          Error, the shared codes, the sentinels
//	tls.go             TLS configurations that pin ed25519 keys
//	keyfiles.go        keys as text (ed25519:, x25519:, fingerprints,
//	                   authorized_keys) and private key files
//	config.go          the client's configuration directory and aliases
//
// Tests take the name of the file they test; fake_apps_test.go is an
// in-memory node behind Apps, and server_test.go the harness that
// serves a Backend on loopback.
package api
