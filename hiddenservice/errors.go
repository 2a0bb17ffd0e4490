package hiddenservice

import "errors"

// Sentinel errors; check them with errors.Is.
var (
	// ErrAddress: a string that is not a v3 onion address (wrong length,
	// not base32, bad checksum or version).
	ErrAddress = errors.New("hiddenservice: not a v3 onion address")
	// ErrClientKey: a string that is not an x25519 client-authorization
	// key in tor's base32 form.
	ErrClientKey = errors.New("hiddenservice: not an x25519 client key")
	// ErrNoClients: an onion with no authorized client keys. Allium
	// never publishes an onion that anyone knowing the address could
	// reach; the node stays reachable on its other listeners.
	ErrNoClients = errors.New("hiddenservice: no authorized client keys: refusing to publish an onion without client authorization")
	// ErrNoTor: the tor binary is missing.
	ErrNoTor = errors.New("hiddenservice: tor binary not found")
	// ErrUploadTimeout: tor accepted the onion but no descriptor reached
	// a directory in time. tor keeps trying; the onion may still appear.
	ErrUploadTimeout = errors.New("hiddenservice: onion descriptor not uploaded in time")
	// ErrTorExited: tor exited while the call waited on it.
	ErrTorExited = errors.New("hiddenservice: tor exited")
	// ErrClientAuth: a client reached tor but the onion service's
	// descriptor could not be decrypted with this client's key (SOCKS
	// reply 0xF4 with ExtendedErrors).
	ErrClientAuth = errors.New("the onion service requires client authorization and this client's key is not accepted")
	// ErrOnionUnreachable: tor found no usable descriptor or could not
	// reach the service's introduction points (SOCKS replies 0xF0-0xF2,
	// 0xF7): the node is down, tor on it is not yet published, or the
	// address is wrong.
	ErrOnionUnreachable = errors.New("the onion service is not reachable: it is offline, not yet published, or the address is wrong")
	// ErrBadOnion: tor rejected the onion address itself (SOCKS reply
	// 0xF6).
	ErrBadOnion = errors.New("tor says the onion address is invalid")
)
