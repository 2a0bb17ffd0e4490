package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// The node's half of the resumable upload (upload.go): HEAD says where
// an upload stands, PUT adds to it. What arrives is handed on to the
// backend (ImageStore.PutImage, Updater.PutInit) as it comes, so a
// dropped connection keeps what came before it.

// uploadTarget is what an upload fills: an image or an init.
type uploadTarget[T any] struct {
	// what names it in messages: "image", "init".
	what string
	// size is the size of the finished one, or a NotFound error when
	// the node has none.
	size func(ctx context.Context, digest string) (int64, error)
	// offset is how many bytes of an unfinished upload the node kept.
	offset func(ctx context.Context, digest string) (int64, error)
	// put takes part of an upload (ImageStore.PutImage).
	put func(ctx context.Context, digest string, offset, total int64, body io.Reader) (T, error)
	// max, when not 0, refuses a longer upload (413) before its body.
	max int64
}

func (s *Server) imageUpload() uploadTarget[Image] {
	return uploadTarget[Image]{
		what: "image",
		size: func(ctx context.Context, d string) (int64, error) {
			img, err := s.backend.Image(ctx, d)
			return img.Size, err
		},
		offset: s.backend.UploadOffset,
		put:    s.backend.PutImage,
	}
}

// headUpload answers 200 when the node has the digest's finished
// upload, else 404 with the offset an upload resumes from.
func headUpload[T any](s *Server, t uploadTarget[T]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d, ok := s.digestParam(w, r)
		if !ok {
			return
		}
		size, err := t.size(r.Context(), d)
		if err == nil {
			w.Header().Set(HeaderUploadOffset, strconv.FormatInt(size, 10))
			w.Header().Set(HeaderUploadLength, strconv.FormatInt(size, 10))
			w.WriteHeader(http.StatusOK)
			return
		}
		if !isNotFound(err) {
			s.fail(w, r, err)
			return
		}
		uploadState(s, w, r, t, d, http.StatusNotFound)
	}
}

// uploadState answers status with the offset the node has of d.
func uploadState[T any](s *Server, w http.ResponseWriter, r *http.Request, t uploadTarget[T], d string, status int) {
	off, err := t.offset(r.Context(), d)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set(HeaderUploadOffset, strconv.FormatInt(off, 10))
	if status == http.StatusNotFound {
		writeError(w, status, CodeNotFound, fmt.Sprintf("%s %s is not on the node; it has %d bytes of an upload", t.what, d, off))
		return
	}
	writeJSON(w, status, UploadState{Digest: d, Offset: off})
}

// putUpload takes part of an upload. A body that ends early is the
// client's dropped connection: what arrived is kept, and the answer
// (if anyone still listens) is 202 with the offset to resume from.
func putUpload[T any](s *Server, t uploadTarget[T]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d, ok := s.digestParam(w, r)
		if !ok {
			return
		}
		offset, total, err := uploadRange(r, t.what, t.max)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		// A connection that dies without a FIN would hold the upload (and
		// its digest, busy) until TCP gave up: a read deadline, pushed on
		// by every read, ends it after uploadIdle of silence instead.
		rc := http.NewResponseController(w)
		body := &bodyReader{r: r.Body, left: total - offset, alive: func() { rc.SetReadDeadline(time.Now().Add(uploadIdle)) }}
		v, err := t.put(r.Context(), d, offset, total, body)
		switch {
		case err != nil && body.short && !isStatus(err):
			uploadState(s, w, r, t, d, http.StatusAccepted)
		case err != nil:
			s.fail(w, r, err)
		default:
			writeJSON(w, http.StatusCreated, v)
		}
	}
}

// uploadRange reads and checks Upload-Offset and Upload-Length of an
// upload of what (an image, an init) capped at max bytes (0: no cap).
func uploadRange(r *http.Request, what string, max int64) (offset, total int64, err error) {
	if offset, err = int64Header(r, HeaderUploadOffset); err != nil {
		return 0, 0, err
	}
	if total, err = int64Header(r, HeaderUploadLength); err != nil {
		return 0, 0, err
	}
	switch {
	case total == 0:
		return 0, 0, BadRequest("%s: 0; an %s is never empty", HeaderUploadLength, what)
	case max > 0 && total > max:
		return 0, 0, TooLarge("%s %d: an %s is at most %d bytes", HeaderUploadLength, total, what, max)
	case offset > total:
		return 0, 0, BadRequest("%s %d is past %s %d", HeaderUploadOffset, offset, HeaderUploadLength, total)
	case r.ContentLength > total-offset:
		return 0, 0, BadRequest("Content-Length %d is more than the %d bytes from %s to %s",
			r.ContentLength, total-offset, HeaderUploadOffset, HeaderUploadLength)
	}
	return offset, total, nil
}

func int64Header(r *http.Request, name string) (int64, error) {
	v := r.Header.Get(name)
	if v == "" {
		return 0, BadRequest("%s: missing", name)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, BadRequest("%s %q: want a byte count", name, v)
	}
	return n, nil
}

// bodyReader yields at most left bytes of an upload's body and notes
// whether it ended (or broke) before them.
type bodyReader struct {
	r     io.Reader
	left  int64
	short bool
	alive func() // called before each read; nil in tests
}

// uploadIdle is how long an upload may send nothing before the node
// gives up on its connection.
const uploadIdle = 60 * time.Second

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if b.alive != nil {
		b.alive()
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if err == io.EOF && b.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && b.left > 0 {
		b.short = true
	}
	return n, err
}
