package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"allium/imagestore"
)

// Apps is the node's images and containers: what the handlers of
// /v1/images, /v1/containers and /v1/events ask of the node (the
// protocol is in images.go, upload.go, containers.go and events.go).
//
// The handlers validate digests and container names before calling, so
// an implementation sees only well-formed ones. To answer with an honest
// status, a method returns an *Error made by NotFound, Conflict,
// BadRequest, TooLarge, Unavailable or NotImplemented (wrapped or not);
// PutImage returns OffsetMismatch when the client's offset is not what
// the node kept. Any other error answers 500 with its text.
type Apps interface {
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
	// RemoveImage deletes an image; Conflict while a container uses it.
	RemoveImage(ctx context.Context, digest string) error

	// Containers lists the containers.
	Containers(ctx context.Context) ([]Container, error)
	// Container returns one container, or NotFound.
	Container(ctx context.Context, name string) (Container, error)
	// PutContainer creates and starts a container, or replaces its
	// image (stop old, start new; volumes carry over). The same image
	// again changes nothing. An image not on the node is NotFound.
	PutContainer(ctx context.Context, name string, req ContainerRequest) (Container, error)
	// StartContainer, StopContainer and RestartContainer are operator
	// actions (they never count as failures). They may return before
	// the container has got there (State starting or stopping).
	StartContainer(ctx context.Context, name string) (Container, error)
	StopContainer(ctx context.Context, name string) (Container, error)
	RestartContainer(ctx context.Context, name string) (Container, error)
	// SignalContainer sends a signal ("SIGKILL", "TERM"...) to the
	// workload's process group; Conflict when it is not running.
	SignalContainer(ctx context.Context, name, signal string) (Container, error)
	// RemoveContainer stops and removes a container; volumes are kept.
	RemoveContainer(ctx context.Context, name string) error
	// Logs writes the container's log lines, "RFC3339NANO STREAM LINE\n"
	// each, to w: the last opts.Tail lines (all when negative), then,
	// with opts.Follow, new ones until ctx ends. Every Write reaches
	// the client at once when following; w is not safe for concurrent
	// use. A Write error means the client went away.
	Logs(ctx context.Context, name string, opts LogOptions, w io.Writer) error
	// Events calls emit for each recorded event, oldest first, then,
	// with follow, for each new one until ctx ends or emit fails.
	Events(ctx context.Context, follow bool, emit func(Event) error) error
}

func (s *Server) appRoutes() {
	m := s.mux
	m.HandleFunc("GET /v1/images", s.listImages)
	m.HandleFunc("HEAD /v1/images/{digest}", s.headImage)
	m.HandleFunc("GET /v1/images/{digest}", s.getImage)
	m.HandleFunc("PUT /v1/images/{digest}", s.putImage)
	m.HandleFunc("DELETE /v1/images/{digest}", s.deleteImage)
	m.HandleFunc("GET /v1/containers", s.listContainers)
	m.HandleFunc("GET /v1/containers/{name}", s.container(Apps.Container))
	m.HandleFunc("PUT /v1/containers/{name}", s.putContainer)
	m.HandleFunc("DELETE /v1/containers/{name}", s.deleteContainer)
	m.HandleFunc("POST /v1/containers/{name}/start", s.container(Apps.StartContainer))
	m.HandleFunc("POST /v1/containers/{name}/stop", s.container(Apps.StopContainer))
	m.HandleFunc("POST /v1/containers/{name}/restart", s.container(Apps.RestartContainer))
	m.HandleFunc("POST /v1/containers/{name}/kill", s.killContainer)
	m.HandleFunc("GET /v1/containers/{name}/logs", s.logs)
	m.HandleFunc("GET /v1/events", s.events)
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
	case r.Context().Err() != nil:
		// The client went away: nobody reads the answer.
	default:
		s.log.Error("api: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, CodeInternal, err.Error())
	}
}

// isStatus reports whether err carries its own status.
func isStatus(err error) bool {
	var oe *OffsetError
	var e *Error
	return errors.As(err, &oe) || errors.As(err, &e) && e.Status >= 400
}

func isNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
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

// nameParam returns the path's {name}, or answers 400.
func (s *Server) nameParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.PathValue("name")
	if err := imagestore.ValidName(name); err != nil {
		s.fail(w, r, BadRequest("container name %v", err))
		return "", false
	}
	return name, true
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) {
	imgs, err := s.backend.Images(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(imgs))
}

func (s *Server) getImage(w http.ResponseWriter, r *http.Request) {
	d, ok := s.digestParam(w, r)
	if !ok {
		return
	}
	img, err := s.backend.Image(r.Context(), d)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, img)
}

// headImage answers 200 when the image is on the node, else 404 with
// the offset an upload resumes from.
func (s *Server) headImage(w http.ResponseWriter, r *http.Request) {
	d, ok := s.digestParam(w, r)
	if !ok {
		return
	}
	img, err := s.backend.Image(r.Context(), d)
	if err == nil {
		w.Header().Set(HeaderUploadOffset, strconv.FormatInt(img.Size, 10))
		w.Header().Set(HeaderUploadLength, strconv.FormatInt(img.Size, 10))
		w.WriteHeader(http.StatusOK)
		return
	}
	if !isNotFound(err) {
		s.fail(w, r, err)
		return
	}
	s.uploadState(w, r, d, http.StatusNotFound)
}

// uploadState answers status with the offset the node has of d.
func (s *Server) uploadState(w http.ResponseWriter, r *http.Request, d string, status int) {
	off, err := s.backend.UploadOffset(r.Context(), d)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set(HeaderUploadOffset, strconv.FormatInt(off, 10))
	if status == http.StatusNotFound {
		writeError(w, status, CodeNotFound, fmt.Sprintf("image %s is not on the node; it has %d bytes of an upload", d, off))
		return
	}
	writeJSON(w, status, UploadState{Digest: d, Offset: off})
}

// putImage takes part of an upload. A body that ends early is the
// client's dropped connection: what arrived is kept, and the answer
// (if anyone still listens) is 202 with the offset to resume from.
func (s *Server) putImage(w http.ResponseWriter, r *http.Request) {
	d, ok := s.digestParam(w, r)
	if !ok {
		return
	}
	offset, total, err := uploadRange(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// A connection that dies without a FIN would hold the upload (and
	// its digest, busy) until TCP gave up: a read deadline, pushed on
	// by every read, ends it after uploadIdle of silence instead.
	rc := http.NewResponseController(w)
	body := &bodyReader{r: r.Body, left: total - offset, alive: func() { rc.SetReadDeadline(time.Now().Add(uploadIdle)) }}
	img, err := s.backend.PutImage(r.Context(), d, offset, total, body)
	switch {
	case err != nil && body.short && !isStatus(err):
		s.uploadState(w, r, d, http.StatusAccepted)
	case err != nil:
		s.fail(w, r, err)
	default:
		writeJSON(w, http.StatusCreated, img)
	}
}

// uploadRange reads and checks Upload-Offset and Upload-Length.
func uploadRange(r *http.Request) (offset, total int64, err error) {
	if offset, err = int64Header(r, HeaderUploadOffset); err != nil {
		return 0, 0, err
	}
	if total, err = int64Header(r, HeaderUploadLength); err != nil {
		return 0, 0, err
	}
	switch {
	case total == 0:
		return 0, 0, BadRequest("%s: 0; an image archive is never empty", HeaderUploadLength)
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

func (s *Server) listContainers(w http.ResponseWriter, r *http.Request) {
	cs, err := s.backend.Containers(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(cs))
}

// container makes a handler that does one thing to the named container
// and answers with it.
func (s *Server) container(do func(Apps, context.Context, string) (Container, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, ok := s.nameParam(w, r)
		if !ok {
			return
		}
		c, err := do(s.backend, r.Context(), name)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, c)
	}
}

func (s *Server) killContainer(w http.ResponseWriter, r *http.Request) {
	name, ok := s.nameParam(w, r)
	if !ok {
		return
	}
	var req SignalRequest // an empty body means SIGKILL
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &req); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	c, err := s.backend.SignalContainer(r.Context(), name, req.Signal)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Server) putContainer(w http.ResponseWriter, r *http.Request) {
	name, ok := s.nameParam(w, r)
	if !ok {
		return
	}
	req, err := decodeContainerRequest(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := s.backend.PutContainer(r.Context(), name, req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// maxRequest bounds a JSON request body.
const maxRequest = 64 << 10

func decodeContainerRequest(w http.ResponseWriter, r *http.Request) (ContainerRequest, error) {
	var req ContainerRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return req, err
	}
	if err := ValidDigest(req.Image); err != nil {
		return req, BadRequest("image %v", err)
	}
	return req, nil
}

// decodeJSON reads exactly one JSON value with known fields into v.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
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
		return BadRequest("request body: empty; want JSON such as {\"image\": \"sha256:...\"}")
	case err != nil:
		return BadRequest("request body: %v", err)
	}
	return nil
}

func (s *Server) deleteContainer(w http.ResponseWriter, r *http.Request) {
	name, ok := s.nameParam(w, r)
	if !ok {
		return
	}
	if err := s.backend.RemoveContainer(r.Context(), name); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
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

// UnimplementedApps answers every apps request with 501. A Backend
// embeds it until it has images and containers.
type UnimplementedApps struct{}

var errNoApps = NotImplemented("this node does not run apps yet (images and containers are not implemented)")

func (UnimplementedApps) Images(context.Context) ([]Image, error)             { return nil, errNoApps }
func (UnimplementedApps) Image(context.Context, string) (Image, error)        { return Image{}, errNoApps }
func (UnimplementedApps) UploadOffset(context.Context, string) (int64, error) { return 0, errNoApps }
func (UnimplementedApps) PutImage(context.Context, string, int64, int64, io.Reader) (Image, error) {
	return Image{}, errNoApps
}
func (UnimplementedApps) RemoveImage(context.Context, string) error       { return errNoApps }
func (UnimplementedApps) Containers(context.Context) ([]Container, error) { return nil, errNoApps }
func (UnimplementedApps) Container(context.Context, string) (Container, error) {
	return Container{}, errNoApps
}
func (UnimplementedApps) PutContainer(context.Context, string, ContainerRequest) (Container, error) {
	return Container{}, errNoApps
}
func (UnimplementedApps) StartContainer(context.Context, string) (Container, error) {
	return Container{}, errNoApps
}
func (UnimplementedApps) StopContainer(context.Context, string) (Container, error) {
	return Container{}, errNoApps
}
func (UnimplementedApps) SignalContainer(context.Context, string, string) (Container, error) {
	return Container{}, errNoApps
}

func (UnimplementedApps) RestartContainer(context.Context, string) (Container, error) {
	return Container{}, errNoApps
}
func (UnimplementedApps) RemoveContainer(context.Context, string) error { return errNoApps }
func (UnimplementedApps) Logs(context.Context, string, LogOptions, io.Writer) error {
	return errNoApps
}
func (UnimplementedApps) Events(context.Context, bool, func(Event) error) error { return errNoApps }
