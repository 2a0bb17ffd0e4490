package api

import (
	"context"
	"io"
	"net/http"
)

// ImageStore is the node's images, and their uploads: what the
// handlers of /v1/images ask of it (images.go, upload.go). Apps says
// how a method answers an error.
type ImageStore interface {
	// Images lists the images on the node.
	Images(ctx context.Context) ([]Image, error)
	// Image returns one image, or a NotFound error when it is not on
	// the node (then HEAD asks UploadOffset).
	Image(ctx context.Context, digest string) (Image, error)
	// UploadOffset says how many bytes of an unfinished upload of
	// digest the node has kept: 0 when it has none.
	UploadOffset(ctx context.Context, digest string) (int64, error)
	// PutImage appends body, which holds the archive from byte offset
	// on, to the upload of digest, whose archive has total bytes.
	// Once all total bytes are in, it checks the digest, unpacks the
	// image and returns it. If body ends early (a dropped connection)
	// it keeps what it got, so that the client can resume, and returns
	// the read error. An offset other than what the node kept is
	// OffsetMismatch. body yields at most total-offset bytes.
	PutImage(ctx context.Context, digest string, offset, total int64, body io.Reader) (Image, error)
	// Uploads lists the partial uploads the node keeps.
	Uploads(ctx context.Context) ([]Upload, error)
	// RemoveImage deletes an image, or the partial upload of digest;
	// Conflict while a container uses it or an upload of it is in
	// flight.
	RemoveImage(ctx context.Context, digest string) error
}

// digestParam returns the path's {digest}, or answers 400.
func (s *Server) digestParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	d := r.PathValue("digest")
	if err := ValidDigest(d); err != nil {
		s.fail(w, r, BadRequest("digest %v", err))
		return "", false
	}
	return d, true
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) {
	imgs, err := s.backend.Images(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(imgs))
}

// getByDigest makes a handler that answers what get returns for the
// path's {digest}.
func getByDigest[T any](s *Server, get func(ctx context.Context, digest string) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d, ok := s.digestParam(w, r)
		if !ok {
			return
		}
		v, err := get(r.Context(), d)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func (s *Server) deleteImage(w http.ResponseWriter, r *http.Request) {
	d, ok := s.digestParam(w, r)
	if !ok {
		return
	}
	if err := s.backend.RemoveImage(r.Context(), d); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listUploads(w http.ResponseWriter, r *http.Request) {
	ups, err := s.backend.Uploads(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(ups))
}
