// Package cli is what Allium's command-line programs, cloud and
// mkimage, share about ending: the exit codes (0 ok, 1 failure, 2
// usage), the marks that say which of the last two an error is, and
// the line that reports it on stderr.
//
// A command's body returns its errors through Fail, which marks them as
// failures unless they are usage errors (Usage, Usagef). Whatever is
// not marked, such as cobra's own errors for an unknown command or flag
// or a wrong number of arguments, is a usage error: it never went
// through a command's body.
//
// It does not own the command trees, flag parsing or anything a command
// prints on success; those are each program's. It imports only the
// standard library, so that it builds wherever the programs do.
package cli
