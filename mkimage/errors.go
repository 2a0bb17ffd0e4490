package main

import (
	"errors"

	"allium/internal/cli"
)

// usagef is cli.Usagef, by the short name the commands use.
func usagef(format string, args ...any) error { return cli.Usagef(format, args...) }

// errLibraryNotFound is a shared library a --binary pack needs but
// cannot find.
var errLibraryNotFound = errors.New("shared library not found")

// errSymlinkEscapes is a symlink in a directory pack whose relative
// target climbs above the image's root.
var errSymlinkEscapes = errors.New("symlink escapes the image")

// errXenCompression is a kernel whose compression Xen's domain builder
// cannot decode, so PyGrub could not boot disk.img.
var errXenCompression = errors.New("Xen's domain builder cannot decode this kernel")
