package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The client's half of the resumable upload (upload.go). Upload asks
// the node where it stands, sends the rest, and on a dropped
// connection, a stall or an offset mismatch asks again and resumes.

// ImageState asks (HEAD) whether the node has the image; when it has
// not, offset is how many bytes of an earlier upload it kept.
func (c *Client) ImageState(ctx context.Context, digest string) (have bool, offset int64, err error) {
	return c.uploadHead(ctx, imagePath(digest), "images")
}

// uploadHead asks (HEAD) whether the node has the finished upload at
// path, of one of what ("images", "inits"); when it has not, offset is
// how many bytes of an earlier upload it kept.
func (c *Client) uploadHead(ctx context.Context, path, what string) (have bool, offset int64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, c.base+path, nil)
	if err != nil {
		return false, 0, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return false, 0, err
	}
	resp.Body.Close()
	off, herr := strconv.ParseInt(resp.Header.Get(HeaderUploadOffset), 10, 64)
	switch {
	case resp.StatusCode == http.StatusOK:
		return true, off, nil
	case resp.StatusCode == http.StatusNotFound && herr == nil:
		return false, off, nil
	}
	return false, 0, headError(resp, what)
}

// headError makes an *Error of a HEAD answer about one of what
// ("images"), which has no body to say more.
func headError(resp *http.Response, what string) error {
	msg := fmt.Sprintf("HEAD %s: %s", resp.Request.URL.Path, resp.Status)
	code := CodeInternal
	switch resp.StatusCode {
	case http.StatusNotFound:
		msg, code = msg+" without "+HeaderUploadOffset+": this node does not take "+what+" (is it older?)", CodeNotFound
	case http.StatusNotImplemented:
		msg, code = "this node does not take "+what, CodeNotImplemented
		if what == "images" {
			msg = noApps
		}
	case http.StatusUnauthorized:
		code = CodeUnauthorized
	case http.StatusForbidden:
		code = CodeForbidden
	case http.StatusBadRequest:
		code = CodeBadRequest
	case http.StatusServiceUnavailable:
		code = CodeUnavailable
	}
	return &Error{Message: msg, Code: code, Status: resp.StatusCode}
}

// UploadOptions tunes Upload. The zero value is usable.
type UploadOptions struct {
	// Progress, when set, is told where the upload stands after each
	// answer of the node, each chunk sent and each interruption. It
	// is called from the goroutine that sends the body, too.
	Progress func(UploadProgress)
	// Retries is how many resumes in a row may fail to move the
	// upload forward before Upload gives up; 0 means 8.
	Retries int
	// Backoff is the wait before resuming, doubling (up to 30 s) while
	// the upload makes no progress; 0 means 1 s.
	Backoff time.Duration
	// Stall ends an attempt, which then resumes, when the connection
	// has taken no bytes for this long; 0 means 60 s. Once the body is
	// sent, the node's unpacking is waited for without a limit.
	Stall time.Duration
}

func (o UploadOptions) withDefaults() UploadOptions {
	if o.Retries == 0 {
		o.Retries = 8
	}
	if o.Backoff == 0 {
		o.Backoff = time.Second
	}
	if o.Stall == 0 {
		o.Stall = time.Minute
	}
	if o.Progress == nil {
		o.Progress = func(UploadProgress) {}
	}
	return o
}

// UploadProgress is where an upload stands.
type UploadProgress struct {
	// Confirmed is how many bytes the node said it has.
	Confirmed int64
	// Sent is how far the archive has been handed to the connection,
	// Confirmed included. After an interruption it falls back to what
	// the node confirms when the upload resumes.
	Sent int64
	// Total is the archive's size.
	Total int64
	// Resumes counts the attempts after the first.
	Resumes int
	// Err, when set, is why the last attempt ended; the upload
	// resumes after Wait.
	Err  error
	Wait time.Duration
}

const maxBackoff = 30 * time.Second

// errStalled ends an attempt whose connection stopped taking bytes.
var errStalled = errors.New("the connection took no bytes")

// errPartial is the node's 202: it kept less than was sent.
var errPartial = errors.New("the node kept only part of what was sent")

// Upload sends the archive in r, size bytes whose sha256 is digest, to
// the node and returns the image the node unpacked from it. It asks the
// node (HEAD) where to start: an image already there is returned
// without sending a byte, and an earlier upload is resumed. A network
// error, a dropped connection, a stall or a 409 offset mismatch makes
// it ask again and resume, with backoff, up to opts.Retries times in a
// row without progress. An answer that says the archive itself is
// wrong (400, 413...) ends it.
func (c *Client) Upload(ctx context.Context, digest string, r io.ReaderAt, size int64, opts UploadOptions) (Image, error) {
	return sendUpload(ctx, c, uploadTo[Image]{path: imagePath(digest), what: "images", get: c.Image}, digest, r, size, opts)
}

// uploadTo is where the client's upload goes: an image or an init.
type uploadTo[T any] struct {
	path string // of HEAD and PUT
	what string // "images", "inits": for messages
	// get asks for the finished one the node has.
	get func(ctx context.Context, digest string) (T, error)
}

func sendUpload[T any](ctx context.Context, c *Client, to uploadTo[T], digest string, r io.ReaderAt, size int64, opts UploadOptions) (T, error) {
	u := &upload[T]{c: c, to: to, digest: digest, r: r, opts: opts.withDefaults()}
	u.p.Total = size
	return u.run(ctx)
}

type upload[T any] struct {
	c      *Client
	to     uploadTo[T]
	digest string
	r      io.ReaderAt
	opts   UploadOptions

	mu sync.Mutex // guards p: the body is read on the transport's goroutine
	p  UploadProgress
}

func (u *upload[T]) run(ctx context.Context) (T, error) {
	var zero T
	delay, stuck, last := u.opts.Backoff, 0, int64(-1)
	for {
		v, err := u.attempt(ctx)
		if err == nil || !resumable(ctx, err) {
			return v, err
		}
		if confirmed := u.progress().Confirmed; confirmed > last {
			delay, stuck, last = u.opts.Backoff, 0, confirmed
		}
		if stuck++; stuck > u.opts.Retries {
			return zero, fmt.Errorf("upload of %s: gave up after %d attempts without progress: %w", u.digest, stuck, err)
		}
		wait := delay
		if isOffsetError(err) {
			wait = 0 // the node said where it stands: resume at once
		}
		u.update(func(p *UploadProgress) { p.Resumes++; p.Err, p.Wait = err, wait })
		if err := sleep(ctx, wait); err != nil {
			return zero, err
		}
		delay = min(2*delay, maxBackoff)
	}
}

// attempt asks where the node stands and sends the rest.
func (u *upload[T]) attempt(ctx context.Context) (T, error) {
	var zero T
	have, off, err := u.c.uploadHead(ctx, u.to.path, u.to.what)
	if err != nil {
		return zero, err
	}
	if have {
		u.update(func(p *UploadProgress) { p.Confirmed, p.Sent, p.Err = p.Total, p.Total, nil })
		return u.to.get(ctx, u.digest)
	}
	total := u.progress().Total
	if off > total {
		return zero, permanent{fmt.Errorf("the node has %d bytes of %s, more than the file's %d", off, u.digest, total)}
	}
	u.update(func(p *UploadProgress) { p.Confirmed, p.Sent, p.Err, p.Wait = off, off, nil, 0 })
	return u.put(ctx, off, total)
}

// put sends the archive from off on.
func (u *upload[T]) put(ctx context.Context, off, total int64) (T, error) {
	var zero T
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	body := &sendBody{r: io.NewSectionReader(u.r, off, total-off), u: u, stall: u.opts.Stall}
	body.timer = time.AfterFunc(u.opts.Stall, func() { cancel(errStalled) })
	defer body.stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.c.base+u.to.path, body)
	if err != nil {
		return zero, err
	}
	if req.ContentLength = total - off; req.ContentLength == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if req.ContentLength > 0 {
		req.Header.Set("Expect", "100-continue") // the node refuses before the body is sent
	}
	req.Header.Set(HeaderUploadOffset, strconv.FormatInt(off, 10))
	req.Header.Set(HeaderUploadLength, strconv.FormatInt(total, 10))
	resp, err := u.c.hc.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errStalled) {
			return zero, fmt.Errorf("%w for %v", cause, u.opts.Stall)
		}
		return zero, err
	}
	defer resp.Body.Close()
	return u.answer(resp)
}

func (u *upload[T]) answer(resp *http.Response) (T, error) {
	var v T
	switch resp.StatusCode {
	case http.StatusCreated:
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			return v, fmt.Errorf("PUT %s: decoding the answer: %w", u.to.path, err)
		}
		u.update(func(p *UploadProgress) { p.Confirmed, p.Sent = p.Total, p.Total })
		return v, nil
	case http.StatusAccepted:
		return v, errPartial
	}
	return v, decodeError(resp)
}

func (u *upload[T]) progress() UploadProgress {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.p
}

// update changes the progress and reports it.
func (u *upload[T]) update(change func(*UploadProgress)) {
	u.mu.Lock()
	change(&u.p)
	p := u.p
	u.mu.Unlock()
	u.opts.Progress(p)
}

// sendBody is an attempt's request body: it counts what the connection
// took, and pushes back the stall timer on each read.
type sendBody struct {
	r       io.Reader
	u       interface{ update(func(*UploadProgress)) }
	stall   time.Duration
	timer   *time.Timer
	mu      sync.Mutex
	stopped bool
}

func (b *sendBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return 0, errStalled // the attempt is over; the transport may still read
	}
	n, err := b.r.Read(p)
	if err != nil {
		b.timer.Stop() // all sent: the node now checks and unpacks
	} else {
		b.timer.Reset(b.stall)
	}
	b.u.update(func(p *UploadProgress) { p.Sent += int64(n) })
	return n, err
}

func (b *sendBody) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopped = true
	b.timer.Stop()
}

// permanent marks an error that resuming cannot cure.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// resumable reports whether asking the node again and resuming may get
// past err.
func resumable(ctx context.Context, err error) bool {
	var e *Error
	var p permanent
	switch {
	case ctx.Err() != nil, errors.Is(err, ErrNodeKey), errors.As(err, &p):
		return false
	case errors.As(err, &e):
		switch e.Status {
		case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusBadGateway,
			http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return e.Code == CodeUploadOffset || e.Code == CodeUploadBusy
	}
	return true // the network: refused, reset, EOF, stalled
}

func isOffsetError(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == CodeUploadOffset
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
