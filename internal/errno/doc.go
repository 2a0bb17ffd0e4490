// Package errno names a system call's failure the way an operator reads
// it in a message: "EPERM", "ENOSPC", rather than Go's sentence for it.
package errno
