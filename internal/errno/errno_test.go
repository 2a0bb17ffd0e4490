//go:build unix

package errno

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
)

func TestName(t *testing.T) {
	for err, want := range map[error]string{
		syscall.EPERM: "EPERM",
		fmt.Errorf("mkdir: %w", &os.PathError{Op: "mkdir", Path: "/x", Err: syscall.ENOSPC}): "ENOSPC",
		errors.New("no errno here"): "no errno here",
	} {
		if got := Name(err); got != want {
			t.Errorf("Name(%v) = %q, want %q", err, got, want)
		}
	}
}
