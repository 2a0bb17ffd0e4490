package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes of Error.Code that any endpoint may answer. Codes of one
// concern live with it: the upload's in upload.go, the keys' in
// keys.go, the node's in node.go.
const (
	CodeUnauthorized   = "unauthorized"
	CodeNotFound       = "not_found"
	CodeBadRequest     = "bad_request"
	CodeMethod         = "method_not_allowed"
	CodeInternal       = "internal"
	CodeUnavailable    = "unavailable"
	CodeConflict       = "conflict"
	CodeTooLarge       = "too_large"
	CodeNotImplemented = "not_implemented"
	CodeNoSpace        = "no_space"
)

// Error is the body of every non-2xx answer.
type Error struct {
	Message string `json:"error"`
	Code    string `json:"code"`
	// Status is the HTTP status the error came with (not on the wire).
	Status int `json:"-"`
}

func (e *Error) Error() string { return e.Message }

// NotFound is an error that answers 404.
func NotFound(format string, args ...any) *Error {
	return newError(http.StatusNotFound, CodeNotFound, fmt.Errorf(format, args...))
}

// Conflict is an error that answers 409: the request clashes with the
// node's state (an image in use, an upload under way).
func Conflict(format string, args ...any) *Error {
	return newError(http.StatusConflict, CodeConflict, fmt.Errorf(format, args...))
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

// NoSpace is an error that answers 507 when the node's data disk is
// full.
func NoSpace(format string, args ...any) *Error {
	return newError(http.StatusInsufficientStorage, CodeNoSpace, fmt.Errorf(format, args...))
}

func newError(status int, code string, err error) *Error {
	return &Error{Message: err.Error(), Code: code, Status: status}
}

var (
	// ErrNodeKey means the node presented a key other than the pinned
	// one.
	ErrNodeKey = errors.New("the node's key is not the one pinned for it")
	// ErrNoAlias means there is no alias of that name.
	ErrNoAlias = errors.New("no such alias")
)
