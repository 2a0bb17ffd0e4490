package network

import "errors"

// Sentinel errors; check them with errors.Is.
var (
	// ErrExhausted: every address of the range is in use.
	ErrExhausted = errors.New("network: no free address in the range")
	// ErrPortTaken: a port another container already publishes.
	ErrPortTaken = errors.New("network: port already published")
	// ErrBadRange: a range that cannot be the bridge's (not IPv4, too
	// small or too large).
	ErrBadRange = errors.New("network: unusable address range")
	// ErrUnknown: Attach of a container that was never Added.
	ErrUnknown = errors.New("network: no address for this container")
)
