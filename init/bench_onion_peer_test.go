package main

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"allium/internal/testkit"

	"allium/api"
	"allium/hiddenservice"
	"allium/internal/tornet"
	"allium/rootfs"

	"github.com/cretz/bine/control"
)

// BenchmarkOnion's peer (bench_onion_test.go): a bare Go HTTPS server,
// and a tor that publishes the shared onion, one port to init's API and
// one to the bare server.

// The shared onion's ports: init's API, the bare server.
const (
	sharedAPIPort  = rootfs.DefaultPort
	sharedBarePort = rootfs.DefaultPort + 1
)

// barePeer is the bare HTTPS server and the tor that publishes the
// shared onion.
type barePeer struct {
	key     ed25519.PublicKey // the bare server's TLS key
	tcp     string            // the bare server, 127.0.0.1:PORT
	proc    *hiddenservice.Process
	control string             // its tor's control socket
	log     string             // its tor's log
	onion   ed25519.PrivateKey // the shared onion's key
	// client is the x25519 key the shared onion authorizes.
	client *ecdh.PrivateKey
	node   atomic.Pointer[[]byte] // the body of GET /v1/node, the node's own
}

// startBarePeer serves the bare server on loopback and starts its tor,
// with the node's torrc settings (hiddenservice.Config and the
// network's lines) and no onion yet: publish adds it.
func startBarePeer(b *testing.B, nw *tornet.Network) *barePeer {
	key, _ := api.NewKey()
	p := &barePeer{key: key.Public().(ed25519.PublicKey)}
	p.node.Store(new([]byte))
	p.tcp = p.serve(b, key)
	p.onion, _ = hiddenservice.NewKey()
	p.client, _ = hiddenservice.NewClientKey()
	dir := b.TempDir()
	p.log, p.control = filepath.Join(dir, "tor.log"), filepath.Join(dir, "run", "control")
	torLog, err := os.Create(p.log)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { torLog.Close() })
	p.proc, err = hiddenservice.NewProcess(hiddenservice.Options{
		Config: hiddenservice.Config{DataDir: filepath.Join(dir, "data"), ControlSocket: p.control, Extra: nw.ClientLines()},
		Exe:    rootfs.TorExe, Starter: testkit.Starter, Stdout: torLog,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.proc.Run(ctx) }()
	b.Cleanup(func() { stop(); <-done })
	return p
}

// serve starts the bare HTTPS server on loopback and returns its address.
func (p *barePeer) serve(b *testing.B, key ed25519.PrivateKey) string {
	cfg, err := api.ServerTLS(key)
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/node", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(*p.node.Load())
	})
	mux.HandleFunc("HEAD /v1/images/{digest}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set(api.HeaderUploadOffset, "0")
		w.WriteHeader(http.StatusNotFound)
	})
	mux.HandleFunc("PUT /v1/images/{digest}", bareUpload)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: mux, TLSConfig: cfg}
	go srv.ServeTLS(ln, "", "")
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// bareUpload counts and discards an upload's body and answers 201 with
// the image, as the node does once it has unpacked it.
func bareUpload(w http.ResponseWriter, r *http.Request) {
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil || n != r.ContentLength {
		http.Error(w, fmt.Sprintf("bare peer: got %d of %d bytes: %v", n, r.ContentLength, err), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(api.Image{Digest: r.PathValue("digest"), Size: n, Created: time.Now()})
}

// onionTarget is the loopback address init's tor forwards the node's
// onion to, from init's console.
func onionTarget(b *testing.B, o *onionNode) string {
	m := regexp.MustCompile(`tor: starting.* target=(127\.0\.0\.1:\d+)`).FindStringSubmatch(o.logs.String())
	if m == nil {
		b.Fatalf("init's console names no onion target (a \"tor: starting\" line with target=)")
	}
	return m[1]
}

// publish adds the shared onion to the peer's tor (ADD_ONION, detached,
// with v3 client authorization; one more port than hiddenservice.Onion
// has) and waits until its descriptor is uploaded.
func (p *barePeer) publish(b *testing.B, apiTarget string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for p.proc.Status().State != hiddenservice.StateRunning {
		if ctx.Err() != nil {
			b.Fatalf("the peer's tor never ran; status %+v; its log:\n%s", p.proc.Status(), benchTail(p.log, 2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd, err := hiddenservice.AddOnionCommand(hiddenservice.Onion{Key: p.onion, Clients: []*ecdh.PublicKey{p.client.PublicKey()},
		Port: sharedAPIPort, Target: apiTarget})
	if err != nil {
		b.Fatal(err)
	}
	cmd += fmt.Sprintf(" Port=%d,%s", sharedBarePort, p.tcp)
	ctl, err := hiddenservice.Dial(ctx, "unix", p.control)
	if err == nil {
		defer ctl.Close()
		err = ctl.EnableEvents(ctx, control.EventCodeHSDesc)
	}
	if err == nil {
		_, err = ctl.Request(ctx, cmd)
	}
	for err == nil {
		var ev control.Event
		if ev, err = ctl.NextEvent(ctx); err == nil {
			if hs, ok := ev.(*control.HSDescEvent); ok && hs.Action == "UPLOADED" && hs.Address == hiddenservice.ID(p.address()) {
				return
			}
		}
	}
	b.Fatalf("the peer's tor: publishing the shared onion: %v; its log:\n%s", err, benchTail(p.log, 2000))
}

func (p *barePeer) address() string { return hiddenservice.KeyAddress(p.onion) }

// benchTail is the last n bytes of a file, for a failure message.
func benchTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	return string(b[max(0, len(b)-n):])
}

// setup hands the node's client tor the keys of both onions it will
// reach, and copies the node's GET /v1/node answer to the bare server.
func (p *barePeer) setup(b *testing.B, o *onionNode) {
	admin, err := hiddenservice.ReadClientKeyFile(api.Config{Dir: o.cfg}.OnionKeyPath())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ctl, err := hiddenservice.Dial(ctx, "unix", o.cli.ControlSocket)
	if err != nil {
		b.Fatal(err)
	}
	defer ctl.Close()
	// Permanent: NEWNYM forgets the others.
	opts := hiddenservice.ClientAuthOptions{Name: "bench", Permanent: true}
	for onion, key := range map[string]*ecdh.PrivateKey{o.onion: admin, p.address(): p.client} {
		if err := ctl.AddClientAuth(ctx, onion, key, opts); err != nil {
			b.Fatalf("ONION_CLIENT_AUTH_ADD %s on the client tor: %v", onion, err)
		}
	}
	var node json.RawMessage
	if err := o.tcp(o.client).Do(ctx, http.MethodGet, "/v1/node", nil, &node); err != nil {
		b.Fatalf("GET /v1/node over TCP: %v", err)
	}
	body := []byte(node)
	p.node.Store(&body)
}

// clients makes a new client per path, each with a connection of its
// own, warmed up.
func (p *barePeer) clients(b *testing.B, o *onionNode) [numPaths]*api.Client {
	dial := (&hiddenservice.SOCKSDialer{Proxy: o.cli.SocksAddr}).DialContext
	onion := func(addr string, node ed25519.PublicKey) *api.Client {
		c, err := api.NewClientDialer(addr, o.client, node, dial)
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	bare, err := api.NewClient(p.tcp, o.client, p.key)
	if err != nil {
		b.Fatal(err)
	}
	shared := func(port int) string { return p.address() + ":" + strconv.Itoa(port) }
	c := [numPaths]*api.Client{
		nodeOnion:  onion(o.onion, o.node),
		sharedAPI:  onion(shared(sharedAPIPort), o.node),
		sharedBare: onion(shared(sharedBarePort), p.key),
		tcpAPI:     o.tcp(o.client),
		tcpBare:    bare,
	}
	for i, cl := range c {
		warmUp(b, cl, o.cli, pathNames[i])
	}
	return c
}
