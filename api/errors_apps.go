package api

import (
	"fmt"
	"net/http"
	"regexp"
)

// Error codes of the apps endpoints.
const (
	CodeConflict       = "conflict"
	CodeTooLarge       = "too_large"
	CodeNotImplemented = "not_implemented"
	CodeUploadOffset   = "upload_offset"
	CodeUploadBusy     = "upload_busy"
)

// NotFound is an error that answers 404.
func NotFound(format string, args ...any) *Error {
	return newError(http.StatusNotFound, CodeNotFound, fmt.Errorf(format, args...))
}

// Conflict is an error that answers 409: the request clashes with the
// node's state (an image in use, an upload under way).
func Conflict(format string, args ...any) *Error {
	return newError(http.StatusConflict, CodeConflict, fmt.Errorf(format, args...))
}

// UploadBusy is an error that answers 409 when another upload of the
// same digest is under way, such as one whose connection died and that
// the node has not noticed yet: the client waits and resumes.
func UploadBusy(format string, args ...any) *Error {
	return newError(http.StatusConflict, CodeUploadBusy, fmt.Errorf(format, args...))
}

// BadRequest is an error that answers 400: what the client sent is
// wrong (a digest mismatch, a bad manifest).
func BadRequest(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, CodeBadRequest, fmt.Errorf(format, args...))
}

// TooLarge is an error that answers 413: over a cap or the free space.
func TooLarge(format string, args ...any) *Error {
	return newError(http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Errorf(format, args...))
}

// Unavailable is an error that answers 503: try again later.
func Unavailable(format string, args ...any) *Error {
	return newError(http.StatusServiceUnavailable, CodeUnavailable, fmt.Errorf(format, args...))
}

// NotImplemented is an error that answers 501.
func NotImplemented(format string, args ...any) *Error {
	return newError(http.StatusNotImplemented, CodeNotImplemented, fmt.Errorf(format, args...))
}

func newError(status int, code string, err error) *Error {
	return &Error{Message: err.Error(), Code: code, Status: status}
}

// OffsetError is PutImage's answer to a client whose offset is not what
// the node kept: 409, with Upload-Offset and the UploadState in the
// body, so the client resumes from there.
type OffsetError struct{ UploadState }

func (e *OffsetError) Error() string {
	return fmt.Sprintf("upload of %s: the node has kept %d bytes; send from there", e.Digest, e.Offset)
}

// OffsetMismatch says that the node has kept have bytes of digest.
func OffsetMismatch(digest string, have int64) error {
	return &OffsetError{UploadState{Digest: digest, Offset: have}}
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// ValidDigest reports whether d is "sha256:" and 64 lower-case hex digits.
func ValidDigest(d string) error {
	if !digestRE.MatchString(d) {
		return fmt.Errorf("%q: want sha256: and 64 lower-case hex digits", d)
	}
	return nil
}
