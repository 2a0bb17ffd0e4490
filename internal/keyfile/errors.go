package keyfile

import "errors"

var (
	// ErrNotPEM means the bytes hold no PEM "PRIVATE KEY" block.
	ErrNotPEM = errors.New(`not a PEM "PRIVATE KEY" block`)
	// ErrNotEd25519 means the block holds a private key of another
	// kind, such as RSA or ECDSA.
	ErrNotEd25519 = errors.New("want an ed25519 key")
)
