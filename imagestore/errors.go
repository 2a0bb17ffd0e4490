package imagestore

import (
	"errors"
	"fmt"
)

// Sentinels, checked with errors.Is. The errors returned carry their own
// text (naming the digest, the entry, the numbers) and match one of
// these.
var (
	// ErrBadDigest: a digest that is not "sha256:" and 64 lower-case
	// hex digits.
	ErrBadDigest = errors.New("imagestore: not a digest")
	// ErrNotFound: no such image on the node.
	ErrNotFound = errors.New("imagestore: no such image")
	// ErrOffset: an upload's offset is not the size of the part the
	// node kept; the error is an *OffsetError saying where to resume.
	ErrOffset = errors.New("imagestore: upload offset mismatch")
	// ErrDigest: the uploaded bytes do not hash to the digest; the
	// error is a *DigestError, and the upload was discarded.
	ErrDigest = errors.New("imagestore: digest mismatch")
	// ErrBusy: an upload or removal of the same digest is under way.
	ErrBusy = errors.New("imagestore: busy")
	// ErrTooLarge: an upload larger than the limits or the free disk.
	ErrTooLarge = errors.New("imagestore: too large")
	// ErrNoSpace: the data disk filled up during an upload, beyond
	// what its reservation foresaw (something else wrote to it); the
	// upload was dropped.
	ErrNoSpace = errors.New("imagestore: no space left on the data disk")
	// ErrInvalid: the image is refused: a bad manifest, a hostile or
	// corrupt archive, or one over the unpacking limits. It is the
	// pusher's fault, not the node's.
	ErrInvalid = errors.New("imagestore: invalid image")
)

// kindError is an error with its own text that errors.Is also matches
// to a sentinel.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// errorf formats an error that matches kind.
func errorf(kind error, format string, args ...any) error {
	return &kindError{kind, fmt.Errorf(format, args...)}
}

// invalid marks err as the archive's fault (ErrInvalid).
func invalid(err error) error { return &kindError{ErrInvalid, err} }

// bad formats an ErrInvalid error.
func bad(format string, args ...any) error { return errorf(ErrInvalid, format, args...) }

// EntryError is an archive entry that was refused or could not be
// written. It matches ErrInvalid when the entry was refused.
type EntryError struct {
	// Entry is the entry's name as the archive spells it.
	Entry string
	Err   error
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("imagestore: entry %q: %v", e.Entry, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

// OffsetError says where an upload stands when a write came with
// another offset. It matches ErrOffset.
type OffsetError struct {
	Digest string
	// Offset is what the client sent.
	Offset int64
	// Kept is how many bytes the node has: resume from there.
	Kept int64
}

func (e *OffsetError) Error() string {
	return fmt.Sprintf("imagestore: upload of %s: offset %d, but the node has %d bytes: resume from %d",
		e.Digest, e.Offset, e.Kept, e.Kept)
}

func (e *OffsetError) Is(target error) bool { return target == ErrOffset }

// DigestError is an upload whose bytes hash to another digest. It
// matches ErrDigest.
type DigestError struct {
	Want, Got string
}

func (e *DigestError) Error() string {
	return fmt.Sprintf("imagestore: digest mismatch: the upload of %s hashes to %s; it was discarded", e.Want, e.Got)
}

func (e *DigestError) Is(target error) bool { return target == ErrDigest }
