package cli

import (
	"errors"
	"fmt"
	"io"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // the command ran and failed
	ExitUsage   = 2 // the command line is wrong
)

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// failure is an error a command met while running: exit status 1
// unless it wraps a usageError.
type failure struct{ err error }

func (e failure) Error() string { return e.err.Error() }
func (e failure) Unwrap() error { return e.err }

// Usage marks err as a mistake in the command line. Its message and
// what it wraps stay err's.
func Usage(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

// Usagef is Usage(fmt.Errorf(format, args...)).
func Usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// Fail marks what a command's body returned as a failure, unless it is
// nil or a usage error, which it returns as they are.
func Fail(err error) error {
	var u usageError
	if err == nil || errors.As(err, &u) {
		return err
	}
	return failure{err}
}

// ExitCode maps an error from a command tree to an exit status: ExitOK
// for nil, ExitUsage for a usage error, ExitFailure for a failure, and
// ExitUsage for anything else, which came from the command-line parser
// rather than from a command.
func ExitCode(err error) int {
	var u usageError
	var f failure
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &u):
		return ExitUsage
	case errors.As(err, &f):
		return ExitFailure
	}
	return ExitUsage
}

// Report prints err on stderr as "prog: err" and, for a usage error,
// where to find help (cmdPath is the command that failed, such as
// "cloud keys"); it returns err's exit code. A nil err prints nothing.
func Report(stderr io.Writer, prog, cmdPath string, err error) int {
	code := ExitCode(err)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
	}
	if code == ExitUsage {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmdPath)
	}
	return code
}
