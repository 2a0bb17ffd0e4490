package xzframe

import "errors"

// The parse functions' errors wrap one of these.
var (
	// ErrTruncated: the input ends inside a field.
	ErrTruncated = errors.New("truncated")
	// ErrChecksum: a field's CRC32 does not match it.
	ErrChecksum = errors.New("CRC32 does not match")
	// ErrFormat: a field holds what the format does not allow, or what
	// this package does not support (an unknown check).
	ErrFormat = errors.New("not in the .xz format")
)
