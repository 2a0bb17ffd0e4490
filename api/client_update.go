package api

import (
	"context"
	"io"
	"net/http"
)

// Init returns the init of digest the node has staged.
func (c *Client) Init(ctx context.Context, digest string) (InitInfo, error) {
	var in InitInfo
	err := c.do(ctx, http.MethodGet, initPath(digest), nil, &in)
	return in, err
}

// InitState asks (HEAD) whether the node has staged the init of digest;
// when it has not, offset is how many bytes of an earlier upload it
// kept.
func (c *Client) InitState(ctx context.Context, digest string) (have bool, offset int64, err error) {
	return c.uploadHead(ctx, initPath(digest), "inits")
}

// UploadInit sends a new init, size bytes in r whose sha256 is digest,
// as Upload sends an image (resuming, with opts), and returns what the
// node found when it checked it. An init the node has staged already is
// returned without sending a byte; one it refuses is an *Error (400)
// saying why.
func (c *Client) UploadInit(ctx context.Context, digest string, r io.ReaderAt, size int64, opts UploadOptions) (InitInfo, error) {
	return sendUpload(ctx, c, uploadTo[InitInfo]{path: initPath(digest), what: "inits", get: c.Init}, digest, r, size, opts)
}
