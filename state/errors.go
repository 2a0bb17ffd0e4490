package state

import (
	"errors"
	"fmt"
)

// Errors of AddKey and RemoveKey, checked with errors.Is.
var (
	// ErrKeyConflict: the key, its name or its onion key is already
	// stored with other fields.
	ErrKeyConflict = errors.New("conflicts with a stored key")
	// ErrKeyNotFound: no stored key matches.
	ErrKeyNotFound = errors.New("no such key")
	// ErrKeyAmbiguous: several stored keys match.
	ErrKeyAmbiguous = errors.New("matches several keys")
	// ErrLastAdmin: the removal would leave no admin key, and with it
	// no way to manage the node remotely.
	ErrLastAdmin = errors.New("it is the last admin key")
)

var (
	// ErrCorrupt: state.db is damaged. A CorruptError carries what and
	// where; the DB starts its recovery when it returns one.
	ErrCorrupt = errors.New("state.db is damaged")
	// ErrNewerSchema: state.db was written by a newer init. It is not
	// damage: the file is left alone, never replaced by a copy.
	ErrNewerSchema = errors.New("state.db is newer than this init")
)

// CorruptError says what in state.db is damaged: a page bbolt's check
// refused, a value whose checksum does not match, or a panic of bbolt
// reading it. It is ErrCorrupt to errors.Is, and it reports itself
// Unavailable (a 503 from the API, not a 500): the node recovers and
// the request can be retried.
type CorruptError struct {
	// Where is the bucket and key, or the page, or "" when unknown.
	Where string
	// Err is what is wrong there.
	Err error
}

func (e *CorruptError) Error() string {
	if e.Where == "" {
		return fmt.Sprintf("state.db is damaged: %v; the node is recovering it from its newest good copy", e.Err)
	}
	return fmt.Sprintf("state.db is damaged at %s: %v; the node is recovering it from its newest good copy", e.Where, e.Err)
}

func (e *CorruptError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// Unavailable reports that the request may be retried once the node has
// recovered state.db (the API answers 503).
func (e *CorruptError) Unavailable() bool { return true }

func corrupt(where string, err error) error { return &CorruptError{Where: where, Err: err} }
