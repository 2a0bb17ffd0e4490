package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// Reading requests and writing answers: JSON bodies both ways, errors
// answered with the status they carry, and query flags.

// writeJSON answers status with v as indented JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) // the client sees a truncated body if this fails
}

// writeError answers status with an Error.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, Error{Message: msg, Code: code})
}

// fail answers err with the status it carries, or 500.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var oe *OffsetError
	var e *Error
	switch {
	case errors.As(err, &oe):
		w.Header().Set(HeaderUploadOffset, strconv.FormatInt(oe.Offset, 10))
		writeJSON(w, http.StatusConflict, struct {
			Error
			UploadState
		}{Error{Message: oe.Error(), Code: CodeUploadOffset}, oe.UploadState})
	case errors.As(err, &e) && e.Status >= 400:
		writeError(w, e.Status, e.Code, e.Message)
	case isUnavailable(err):
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, err.Error())
	case r.Context().Err() != nil:
		// The client went away: nobody reads the answer.
	default:
		s.log.Error("api: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, CodeInternal, err.Error())
	}
}

// isUnavailable reports whether err says, by an Unavailable() bool
// method, that the node cannot answer now but will (state.db being
// recovered): a 503 to retry, not a 500.
func isUnavailable(err error) bool {
	var u interface{ Unavailable() bool }
	return errors.As(err, &u) && u.Unavailable()
}

// isStatus reports whether err carries its own status.
func isStatus(err error) bool {
	var oe *OffsetError
	var e *Error
	return errors.As(err, &oe) || errors.As(err, &e) && e.Status >= 400
}

// isNotFound reports whether err answers 404.
func isNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// maxRequest bounds a JSON request body.
const maxRequest = 64 << 10

// decodeJSON reads exactly one JSON value with known fields into v. An
// empty body is refused with example, a body the endpoint takes.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any, example string) error {
	d := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequest))
	d.DisallowUnknownFields()
	err := d.Decode(v)
	if err == nil && d.Decode(new(json.RawMessage)) != io.EOF {
		return BadRequest("request body: more than one JSON value")
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return TooLarge("request body: more than %d bytes", tooLarge.Limit)
	case err == io.EOF:
		return BadRequest("request body: empty; want JSON such as %s", example)
	case err != nil:
		return BadRequest("request body: %v", err)
	}
	return nil
}

// nonNil makes a nil list answer [] rather than null.
func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

// queryBool reads ?key=1|0|true|false; absent is false.
func queryBool(q url.Values, key string) (bool, error) {
	v := q.Get(key)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, BadRequest("%s %q: want 1 or 0", key, v)
	}
	return b, nil
}
