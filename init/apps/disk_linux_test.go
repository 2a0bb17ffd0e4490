package apps

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"allium/api"
	"allium/internal/testkit"
	"allium/state"
)

// diskBackend serves a Service as a node whose GET /v1/node reports
// the data disk as init's does.
type diskBackend struct {
	*Service
	api.UnimplementedKeys
	api.UnimplementedUpdater
}

func (b diskBackend) Node(context.Context) (api.Node, error) {
	return api.Node{Name: "test", Disk: b.Disk()}, nil
}
func (diskBackend) Reboot() error                              { return nil }
func (diskBackend) Poweroff() error                            { return nil }
func (diskBackend) Uninstall() (string, error)                 { return "", nil }
func (diskBackend) SetTCP(bool) error                          { return nil }
func (diskBackend) Authorize(ed25519.PublicKey) (string, bool) { return api.RoleAdmin, true }

// serveUnix serves svc on a unix socket (root only) and returns a
// client of it and the socket's path.
func serveUnix(t *testing.T, svc *Service) (*api.Client, string) {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(nil)
	srv, err := api.NewServer(diskBackend{Service: svc}, key, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeUnix(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return api.NewUnixClient(sock), sock
}

// bigImage is an uncompressed image whose rootfs holds size random
// bytes: its archive and its tree take about size each.
func bigImage(t *testing.T, name string, size int64) (data []byte, digest string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	m := fmt.Sprintf(`{"version": 1, "name": %q, "command": ["/app"]}`, name)
	tw.WriteHeader(&tar.Header{Name: "manifest.json", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(m))})
	tw.Write([]byte(m))
	tw.WriteHeader(&tar.Header{Name: "rootfs/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "rootfs/app", Typeflag: tar.TypeReg, Mode: 0o755, Size: size})
	io.CopyN(tw, rand.Reader, size)
	tw.Close()
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), "sha256:" + hex.EncodeToString(sum[:])
}

// gatedReader is an archive whose bytes wait for open to be closed.
type gatedReader struct {
	r    *bytes.Reader
	open chan struct{}
}

func (g *gatedReader) ReadAt(p []byte, off int64) (int, error) {
	<-g.open
	return g.r.ReadAt(p, off)
}

// refusedUpFront sends PUT headers for an upload of length bytes, with
// Expect: 100-continue, and returns the status line the node answers
// before it has been sent a byte of the body.
func refusedUpFront(t *testing.T, sock, digest string, length int64) string {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "PUT /v1/images/%s HTTP/1.1\r\nHost: allium\r\nUpload-Offset: 0\r\nUpload-Length: %d\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n",
		digest, length, length)
	status, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the answer to the headers: %v", err)
	}
	return strings.TrimSpace(status)
}

// Three concurrent uploads each passed the free-space check on its own
// and together filled the data disk; all failed with 500 and left
// their parts (issue 10). On a small ext4 data disk: two uploads in
// flight hold their space, a third that does not fit beside them is
// refused with 413 before a byte of its body is sent, nothing of it is
// left, the two finish, state.db is still written, and GET /v1/node
// shows the space.
func TestUploadsOverFreeSpace(t *testing.T) {
	testkit.NeedRoot(t)
	dir := testkit.Ext4(t, 256<<20)
	n := newNode(t, dir)
	defer n.close(t)
	client, sock := serveUnix(t, n.svc)
	d := n.svc.Disk()
	avail := d.Free - d.Floor
	if d.StateReserve != StateReserve || d.Total < 200<<20 || d.Files == 0 || d.FilesFree == 0 {
		t.Fatalf("Disk() = %+v; want the ext4's size, its inodes and state.db's reserve", d)
	}
	size := avail * 3 / 10
	a, da := bigImage(t, "a", size)
	b, db := bigImage(t, "b", size)
	gates := []*gatedReader{{bytes.NewReader(a), make(chan struct{})}, {bytes.NewReader(b), make(chan struct{})}}
	done := make([]chan error, 2)
	for i, up := range []struct {
		digest string
		data   []byte
	}{{da, a}, {db, b}} {
		done[i] = make(chan error, 1)
		go func() {
			_, err := client.Upload(context.Background(), up.digest, gates[i], int64(len(up.data)), api.UploadOptions{})
			done[i] <- err
		}()
	}
	want := int64(len(a) + len(b))
	for deadline := time.Now().Add(30 * time.Second); n.svc.Disk().Uploading != want; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Disk().Uploading = %d, want %d: the two uploads in flight", n.svc.Disk().Uploading, want)
		}
	}
	_, dc := image(t, `{"version": 1, "name": "c", "command": ["/app"]}`)
	if got := refusedUpFront(t, sock, dc, avail/2); !strings.HasPrefix(got, "HTTP/1.1 413") {
		t.Errorf("the third upload's headers were answered %q, want 413 before its body", got)
	}
	if ups, _ := client.Uploads(context.Background()); len(ups) > 2 {
		t.Errorf("uploads after the refusal = %+v, want only the two in flight", ups)
	}
	for i := range gates {
		close(gates[i].open)
		if err := <-done[i]; err != nil {
			t.Fatalf("upload %d = %v, want it unpacked", i, err)
		}
	}
	for _, sub := range []string{"data/uploads", "data/staging"} {
		if ents, _ := os.ReadDir(filepath.Join(dir, sub)); len(ents) != 0 {
			t.Errorf("%s holds %v, want nothing left over", sub, ents)
		}
	}
	if _, err := n.db.UpdateContainer("nosuch", func(*state.Container) {}); err != nil {
		t.Errorf("state.db after the uploads: %v, want it writable", err)
	}
	if !eventRecorded(t, n, "upload refused") {
		t.Error("no event recorded the refused upload")
	}
	node, err := client.Node(context.Background())
	if err != nil || node.Disk == nil || node.Disk.Free <= 0 || node.Disk.Total != d.Total || node.Disk.Uploading != 0 {
		t.Errorf("GET /v1/node = %+v, %v; want the disk's space, nothing uploading", node.Disk, err)
	}
}

// eventRecorded reports whether state.db holds an event whose message
// has text.
func eventRecorded(t *testing.T, n *node, text string) bool {
	t.Helper()
	evs, err := n.db.Events()
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	for _, e := range evs {
		if strings.Contains(string(e), text) {
			return true
		}
	}
	return false
}

// fill takes every free block of the filesystem of dir, root's reserve
// too, in a file it returns.
func fill(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Statfs_t
	unix.Statfs(dir, &st)
	unix.Fallocate(int(f.Fd()), 0, 0, int64(st.Bfree)*st.Bsize) // may fall short of the metadata it needs
	buf := make([]byte, 1<<20)
	for n := 1 << 20; n > 0; {
		if _, err := f.Write(buf[:n]); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			n /= 2
		}
	}
	f.Sync()
	return p
}

// A node whose data disk was full could not write state.db (issue 10).
// At 0 bytes free it still answers GET /v1/node, refuses an upload up
// front and records the refusal in state.db (its reserve), and once
// space is freed takes the upload and its reserve back.
func TestZeroBytesFree(t *testing.T) {
	testkit.NeedRoot(t)
	dir := testkit.Ext4(t, 128<<20)
	n := newNode(t, dir)
	defer n.close(t)
	client, sock := serveUnix(t, n.svc)
	filler := fill(t, dir)
	ctx := context.Background()
	node, err := client.Node(ctx)
	if err != nil || node.Disk == nil || node.Disk.Free != 0 {
		t.Fatalf("GET /v1/node at 0 bytes free = %+v, %v; want an answer with 0 free", node.Disk, err)
	}
	data, digest := image(t, `{"version": 1, "name": "web", "command": ["/app"]}`)
	if got := refusedUpFront(t, sock, digest, int64(len(data))); !strings.HasPrefix(got, "HTTP/1.1 413") {
		t.Errorf("an upload at 0 bytes free was answered %q, want 413", got)
	}
	for i := range 200 { // more than a page of events, more than one commit
		n.svc.events.publish(api.Event{Type: api.EventImage, Message: fmt.Sprintf("event %d at 0 bytes free", i)})
	}
	if !eventRecorded(t, n, "upload refused") || !eventRecorded(t, n, "event 199 at 0 bytes free") {
		t.Error("state.db did not record the events at 0 bytes free")
	}
	os.Remove(filler)
	if _, err := client.Upload(ctx, digest, bytes.NewReader(data), int64(len(data)), api.UploadOptions{}); err != nil {
		t.Errorf("Upload once space is freed = %v, want it unpacked", err)
	}
	if err := client.RemoveImage(ctx, digest); err != nil {
		t.Errorf("RemoveImage = %v", err)
	}
	if node, err := client.Node(ctx); err != nil || node.Disk.Free == 0 || node.Disk.StateReserve != StateReserve {
		t.Errorf("GET /v1/node after space was freed = %+v, %v; want free space and state.db's reserve", node.Disk, err)
	}
}

// A dropped connection right after the last byte of an upload
// discarded the whole upload silently (issue 10). The API client's
// Upload over a connection that drops once it has sent everything: the
// node keeps the upload and unpacks it, and the client's retry finds
// the image.
func TestUploadDroppedAfterTheLastByte(t *testing.T) {
	n := newNode(t, t.TempDir())
	defer n.close(t)
	_, key, _ := ed25519.GenerateKey(nil)
	srv, err := api.NewServer(diskBackend{Service: n.svc}, key, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(ln)
	defer srv.Shutdown(context.Background())
	data, digest := bigImage(t, "web", 4<<20)
	body := &lastByte{r: bytes.NewReader(data)}
	_, ckey, _ := ed25519.GenerateKey(nil)
	client, err := api.NewClientDialer(ln.Addr().String(), ckey, key.Public().(ed25519.PublicKey), body.dial)
	if err != nil {
		t.Fatal(err)
	}
	img, err := client.Upload(context.Background(), digest, body, int64(len(data)),
		api.UploadOptions{Backoff: 50 * time.Millisecond})
	if err != nil || img.Digest != digest {
		t.Fatalf("Upload over a connection dropped after the last byte = %+v, %v; want the image", img, err)
	}
	if !body.dropped.Load() {
		t.Fatal("the connection was not dropped")
	}
	if puts := body.puts.Load(); puts != 1 {
		t.Errorf("the archive was sent %d times, want once: the retry finds it done", puts)
	}
}

// lastByte is an archive whose connection drops once its last byte
// has been handed to it.
type lastByte struct {
	r       *bytes.Reader
	sent    atomic.Bool // the last byte was read
	dropped atomic.Bool
	puts    atomic.Int32 // reads from offset 0
}

func (l *lastByte) ReadAt(p []byte, off int64) (int, error) {
	if off == 0 {
		l.puts.Add(1)
	}
	n, err := l.r.ReadAt(p, off)
	if off+int64(n) == l.r.Size() {
		l.sent.Store(true)
	}
	return n, err
}

func (l *lastByte) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	return &dropConn{Conn: c, l: l}, err
}

type dropConn struct {
	net.Conn
	l *lastByte
}

func (c *dropConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if c.l.sent.Load() && !c.l.dropped.Swap(true) {
		c.Conn.Close()
	}
	return n, err
}
