package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// progressLog keeps what an upload reported.
type progressLog struct {
	mu   sync.Mutex
	errs []error
	last UploadProgress
}

func (l *progressLog) report(p UploadProgress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p.Err != nil && (len(l.errs) == 0 || l.errs[len(l.errs)-1] != p.Err) {
		l.errs = append(l.errs, p.Err)
	}
	l.last = p
}

func fastRetries(l *progressLog) UploadOptions {
	return UploadOptions{Progress: l.report, Backoff: time.Millisecond, Stall: 500 * time.Millisecond}
}

func TestUpload(t *testing.T) {
	n, apps := startApps(t)
	c := n.dial(t, n.client)
	data := archive(1 << 20)
	d := digestOf(data)
	var log progressLog
	img, err := c.Upload(t.Context(), d, bytes.NewReader(data), int64(len(data)), fastRetries(&log))
	if err != nil || img.Digest != d || img.Size != int64(len(data)) {
		t.Fatalf("Upload() = %+v, %v; want the image %s", img, err, d)
	}
	if log.last.Confirmed != int64(len(data)) || log.last.Sent != int64(len(data)) || len(log.errs) != 0 {
		t.Errorf("Upload() last progress %+v, errors %v; want all confirmed and no errors", log.last, log.errs)
	}
	img, err = c.Upload(t.Context(), d, bytes.NewReader(data), int64(len(data)), UploadOptions{})
	if err != nil || img.Digest != d {
		t.Errorf("Upload() of an image already there = %+v, %v; want it", img, err)
	}
	if !slices.Equal(apps.puts, []int64{0}) {
		t.Errorf("PutImage offsets = %v, want [0]: an image already there is not sent again", apps.puts)
	}
}

func TestUploadDigestMismatchIsNotRetried(t *testing.T) {
	n, apps := startApps(t)
	data := archive(1000)
	_, err := n.dial(t, n.client).Upload(t.Context(), zeroDigest, bytes.NewReader(data), 1000, UploadOptions{Backoff: time.Millisecond})
	wantStatus(t, "Upload() with a wrong digest", err, http.StatusBadRequest, CodeBadRequest)
	if len(apps.puts) != 1 {
		t.Errorf("PutImage called %d times, want once: a digest mismatch is not worth resuming", len(apps.puts))
	}
}

// TestInterruptedBodyThenResume: a client whose connection dies in the
// middle of the body; the node keeps what arrived, HEAD says so, and
// the upload resumes from there.
func TestInterruptedBodyThenResume(t *testing.T) {
	n, apps := startApps(t)
	data := archive(300_000)
	d := digestOf(data)
	sendHalf(t, n, d, data, 100_000)
	c := n.dial(t, n.client)
	have, off := false, int64(0)
	for deadline := time.Now().Add(10 * time.Second); off != 100_000 && time.Now().Before(deadline); {
		var err error
		if have, off, err = c.ImageState(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	if have || off != 100_000 {
		t.Fatalf("ImageState() after a cut body = %v, %d; want false, 100000", have, off)
	}
	if _, err := c.Upload(t.Context(), d, bytes.NewReader(data), int64(len(data)), UploadOptions{}); err != nil {
		t.Fatalf("Upload() resuming = %v", err)
	}
	if !slices.Equal(apps.puts, []int64{0, 100_000}) {
		t.Errorf("PutImage offsets = %v, want [0 100000]", apps.puts)
	}
}

// sendHalf writes a PUT announcing all of data but sends only its first
// cut bytes, then closes the connection.
func sendHalf(t *testing.T, n *testNode, d string, data []byte, cut int) {
	t.Helper()
	cfg, err := ClientTLS(n.client, n.key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", n.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /v1/images/%s HTTP/1.1\r\nHost: node\r\nContent-Length: %d\r\n%s: 0\r\n%s: %d\r\n\r\n",
		d, len(data), HeaderUploadOffset, HeaderUploadLength, len(data))
	if _, err := conn.Write(data[:cut]); err != nil {
		t.Fatal(err)
	}
}

// TestUploadResumesAfterDrop: the node drops the connection in the
// middle of the body; Upload asks where it stands and sends the rest.
func TestUploadResumesAfterDrop(t *testing.T) {
	n, apps := startApps(t)
	apps.dropAt = 400_000
	data := archive(1 << 20)
	d := digestOf(data)
	var log progressLog
	img, err := n.dial(t, n.client).Upload(t.Context(), d, bytes.NewReader(data), int64(len(data)), fastRetries(&log))
	if err != nil || img.Digest != d {
		t.Fatalf("Upload() through a dropped connection = %+v, %v; want the image", img, err)
	}
	if !slices.Equal(apps.puts, []int64{0, 400_000}) {
		t.Errorf("PutImage offsets = %v, want [0 400000]", apps.puts)
	}
	if len(log.errs) != 1 || log.last.Resumes != 1 {
		t.Errorf("progress saw errors %v and %d resumes, want one of each", log.errs, log.last.Resumes)
	}
}

// Regression: a node still holding a dead connection's upload answered
// 409 busy, and the client gave up instead of waiting for it to let go.
func TestUploadWaitsOutBusy(t *testing.T) {
	n, apps := startApps(t)
	apps.busy = 2
	data := archive(100_000)
	d := digestOf(data)
	var log progressLog
	img, err := n.dial(t, n.client).Upload(t.Context(), d, bytes.NewReader(data), int64(len(data)), fastRetries(&log))
	if err != nil || img.Digest != d {
		t.Fatalf("Upload() while the node is busy twice = %+v, %v; want the image", img, err)
	}
	if len(apps.puts) != 3 {
		t.Errorf("PutImage calls = %v, want 3 (two busy, one through)", apps.puts)
	}
}

// TestUploadResumesAfterStall: the node stops reading; the client's
// stall timer ends the attempt, and it resumes.
func TestUploadResumesAfterStall(t *testing.T) {
	n, apps := startApps(t)
	apps.stallAt = 1 << 20
	data := archive(32 << 20) // far more than loopback's socket buffers
	d := digestOf(data)
	var log progressLog
	opts := fastRetries(&log)
	opts.Stall = time.Second
	if _, err := n.dial(t, n.client).Upload(t.Context(), d, bytes.NewReader(data), int64(len(data)), opts); err != nil {
		t.Fatalf("Upload() through a stall = %v", err)
	}
	// A slow machine (-race) may stall again later; the first resume
	// must start where the node stopped reading.
	if len(apps.puts) < 2 || apps.puts[0] != 0 || apps.puts[1] != 1<<20 {
		t.Errorf("PutImage offsets = %v, want [0 %d ...]", apps.puts, 1<<20)
	}
	if len(log.errs) == 0 || !errors.Is(log.errs[0], errStalled) {
		t.Errorf("progress saw errors %v, want a stall first", log.errs)
	}
}

func TestUploadGivesUp(t *testing.T) {
	addr := closedAddr(t)
	c, err := NewClient(addr, newKey(t), newKey(t).Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	var log progressLog
	opts := fastRetries(&log)
	opts.Retries = 3
	_, err = c.Upload(t.Context(), zeroDigest, bytes.NewReader(nil), 10, opts)
	if err == nil || log.last.Resumes != 3 {
		t.Errorf("Upload() to a closed port = %v after %d resumes, want an error after 3", err, log.last.Resumes)
	}
}

func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// A 150 MB image was sent whole before the node refused it for its
// size, although its length was in the first request's headers (issue
// 10): the upload asks first (Expect: 100-continue), and a refusal
// comes before the body is sent.
func TestUploadRefusedBeforeTheBody(t *testing.T) {
	n, apps := startApps(t)
	apps.limit = 1 << 20
	var wrote countingDial
	c, err := NewClientDialer(n.addr, n.client, n.key.Public().(ed25519.PublicKey), wrote.dial)
	if err != nil {
		t.Fatal(err)
	}
	data := archive(8 << 20)
	_, err = c.Upload(t.Context(), digestOf(data), bytes.NewReader(data), int64(len(data)), UploadOptions{Backoff: time.Millisecond})
	wantStatus(t, "Upload() of an archive over the node's limit", err, http.StatusRequestEntityTooLarge, CodeTooLarge)
	// The TLS handshake and the requests' headers are a few KiB.
	if got := wrote.n.Load(); got > 64<<10 {
		t.Errorf("the client wrote %d bytes to the connection, want < 64 KiB of the %d-byte archive", got, len(data))
	}
}

// countingDial dials TCP and counts the bytes written.
type countingDial struct{ n atomic.Int64 }

func (d *countingDial) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &d.n}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}
