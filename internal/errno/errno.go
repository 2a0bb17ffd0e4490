//go:build unix

package errno

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// Name is the errno's name of err ("EPERM"), found anywhere in its
// chain, or err's text when it holds none.
func Name(err error) string {
	var e syscall.Errno
	if errors.As(err, &e) {
		if name := unix.ErrnoName(e); name != "" {
			return name
		}
	}
	return err.Error()
}
