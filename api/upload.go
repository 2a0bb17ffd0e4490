package api

import (
	"fmt"
	"net/http"
)

// Uploads are resumable and addressed by the archive's digest:
//
//	HEAD /v1/images/{digest}        200: the image is on the node (skip the upload)
//	                                404: not there; Upload-Offset: N says how many
//	                                bytes of an earlier upload the node kept
//	PUT  /v1/images/{digest}        body: the archive from byte Upload-Offset on,
//	                                headers Upload-Offset: N, Upload-Length: TOTAL.
//	                                409 + UploadState when N is not what the node
//	                                has (the body is also an Error, code
//	                                "upload_offset", and Upload-Offset says it too);
//	                                409 "upload_busy" while another upload of the
//	                                digest is under way (wait, then resume);
//	                                201 + Image once all TOTAL bytes are in,
//	                                the digest matched and the image unpacked;
//	                                202 + UploadState when the body ended before
//	                                TOTAL (the node keeps what came: send the rest).
//
// The server's half is in server_upload.go, the client's (Client.Upload,
// which resumes on its own) in client_upload.go.

// Upload headers.
const (
	HeaderUploadOffset = "Upload-Offset"
	HeaderUploadLength = "Upload-Length"
)

// Error codes of an upload.
const (
	CodeUploadOffset = "upload_offset"
	CodeUploadBusy   = "upload_busy"
)

// UploadState is where an upload stands.
type UploadState struct {
	Digest string `json:"digest"`
	// Offset is how many bytes the node has kept.
	Offset int64 `json:"offset"`
}

// UploadBusy is an error that answers 409 when another upload of the
// same digest is under way, such as one whose connection died and that
// the node has not noticed yet: the client waits and resumes.
func UploadBusy(format string, args ...any) *Error {
	return newError(http.StatusConflict, CodeUploadBusy, fmt.Errorf(format, args...))
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
