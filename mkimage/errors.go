package main

import (
	"errors"
	"fmt"
)

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }

func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// failure is an error from a command that started running: exit status 1
// unless it wraps a usageError.
type failure struct{ err error }

func (e failure) Error() string { return e.err.Error() }

func (e failure) Unwrap() error { return e.err }

// exitCode maps an error from the command tree to an exit status. Cobra's
// own errors (an unknown command or flag, a bad flag value, a wrong number
// of arguments) never pass through a RunE, so they are not failures: they
// are usage errors.
func exitCode(err error) int {
	var u usageError
	var f failure
	switch {
	case err == nil:
		return 0
	case errors.As(err, &u):
		return 2
	case errors.As(err, &f):
		return 1
	}
	return 2
}

// errLibraryNotFound is a shared library a --binary pack needs but
// cannot find.
var errLibraryNotFound = errors.New("shared library not found")

// errSymlinkEscapes is a symlink in a directory pack whose relative
// target climbs above the image's root.
var errSymlinkEscapes = errors.New("symlink escapes the image")
