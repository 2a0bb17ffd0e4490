package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"allium/api"
	"allium/hiddenservice"
	"allium/hiddenservice/tornet"
	"allium/rootfs"
)

// BenchmarkOnion is issue 4's benchmark of the onion control plane, on
// the private Tor network (tor and root tiers). The real init runs as
// PID 1 in OS-container mode with its tor (onion_test.go's
// startOnionNode); its peer is a bare Go HTTPS server with the same TLS
// setup (api.ServerTLS, pinned ed25519 keys, HTTP/1.1) behind an onion
// of its own, published by a service tor that hiddenservice supervises
// with the node's torrc settings. One client tor of the network reaches
// both, so the two sides differ only in the server behind the onion.
// The same api.Client code talks to all four paths: the node and the
// peer, each through its onion and over loopback TCP.
//
//   - Latency: GET /v1/node, keep-alive (one warm-up request per path
//     first, untimed), 50 per round; the peer answers the bytes the
//     node answered, so the bodies are the same size. Requests go
//     round-robin over the paths, in alternating order.
//   - Upload: api.Client.Upload (HEAD, then PUT) of an uncompressed
//     native image of ~8 MiB (the host's busybox and random bytes), a
//     new digest for every round and path. The node checks the digest
//     and unpacks it before it answers; the peer counts the bytes and
//     discards them. API and peer alternate which goes first.
//   - Memory: init's and tor's resident sets once the node is up,
//     published and idle (no apps, before any request through the
//     onion), from GET /v1/node and from /proc/PID/status on the host;
//     again after the benchmark's traffic.
//
// Goals (issue 4): the API adds no more than 10% on top of the bare
// server behind the same onion; init plus tor, idle, under 64 MiB.
// $ALLIUM_BENCH_ROUNDS sets the rounds (default 3: an upload through
// the onion takes seconds).
func BenchmarkOnion(b *testing.B) {
	requireRoot(b)
	nw := torNetwork(b)
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		b.Skip("root tier: /bin/busybox missing (apt-get install busybox-static)")
	}
	peer := startBarePeer(b, nw) // its tor publishes while the node boots
	o := startOnionNode(b, nw)
	peer.waitPublished(b)
	idle := readNodeMemory(b, o)
	paths := onionPaths(b, o, peer)
	rounds := benchEnvInt(b, "ALLIUM_BENCH_ROUNDS", 3)

	s := onionSamples{rounds: rounds}
	s.body = len(*peer.node.Load())
	for i := range rounds {
		s.latencyRound(b, paths, i)
	}
	for i := range rounds {
		s.uploadRound(b, o, paths, bb, i)
	}
	busy := readNodeMemory(b, o)
	s.print(os.Stdout, idle, busy)
	s.report(b, idle)
}

// The four paths, in the order of onionSamples' arrays.
const (
	onionAPI = iota
	onionBare
	tcpAPI
	tcpBare
	numPaths
)

var pathNames = [numPaths]string{"onion: API (init)", "onion: bare Go HTTPS", "TCP: API (init)", "TCP: bare Go HTTPS"}

// Issue 4's goals.
const (
	goalOnionRatio = 1.10
	goalNodeMiB    = 64
)

// onionImageSize is about the size of the images uploaded.
const onionImageSize = 8 << 20

// barePeer is the bare HTTPS server and the onion its tor publishes.
type barePeer struct {
	key   ed25519.PublicKey // its TLS key
	tcp   string            // 127.0.0.1:PORT, also the onion's target
	onion string            // ID.onion:PORT
	proc  *hiddenservice.Process
	// client is the x25519 key its onion authorizes (the node's
	// authorizes the admin's key of its cloud configuration).
	client *ecdh.PrivateKey
	log    string                 // its tor's log
	node   atomic.Pointer[[]byte] // the body of GET /v1/node, the node's own
}

// startBarePeer serves the bare server on loopback and starts its
// service tor, with the node's torrc settings (hiddenservice.Config and
// the network's lines), publishing an onion at the node's port for the
// a client key of its own. It does not wait for the onion.
func startBarePeer(b *testing.B, nw *tornet.Network) *barePeer {
	key, _ := api.NewKey()
	p := &barePeer{key: key.Public().(ed25519.PublicKey)}
	p.node.Store(new([]byte))
	p.tcp = p.serve(b, key)
	onionKey, _ := hiddenservice.NewKey()
	p.onion = hiddenservice.KeyAddress(onionKey) + ":" + strconv.Itoa(rootfs.DefaultPort)
	p.client, _ = hiddenservice.NewClientKey()
	svc, err := hiddenservice.NewService(hiddenservice.Onion{Key: onionKey, Clients: []*ecdh.PublicKey{p.client.PublicKey()},
		Port: rootfs.DefaultPort, Target: p.tcp})
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	p.log = filepath.Join(dir, "tor.log")
	torLog, err := os.Create(p.log)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { torLog.Close() })
	p.proc, err = hiddenservice.NewProcess(hiddenservice.Options{
		Config: hiddenservice.Config{DataDir: filepath.Join(dir, "data"), ControlSocket: filepath.Join(dir, "run", "control"),
			Extra: nw.ClientLines()},
		Exe: rootfs.TorExe, Start: tornet.StartReaped, Service: svc, Stdout: torLog,
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

func (p *barePeer) waitPublished(b *testing.B) {
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if st := p.proc.Status(); st.Published {
			return
		}
	}
	b.Fatalf("the bare peer's tor never published %s; status %+v; its log:\n%s", p.onion, p.proc.Status(), benchTail(p.log, 2000))
}

// benchTail is the last n bytes of a file, for a failure message.
func benchTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	return string(b[max(0, len(b)-n):])
}

// onionPaths hands the node's client tor both onions' keys, copies the
// node's GET /v1/node answer to the peer, and returns a warmed-up
// client per path.
func onionPaths(b *testing.B, o *onionNode, peer *barePeer) [numPaths]*api.Client {
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
	// Permanent: a NEWNYM (see warmUp) forgets the others.
	opts := hiddenservice.ClientAuthOptions{Name: "bench", Permanent: true}
	for onion, key := range map[string]*ecdh.PrivateKey{o.onion: admin, peer.onion: peer.client} {
		if err := ctl.AddClientAuth(ctx, onion, key, opts); err != nil {
			b.Fatalf("ONION_CLIENT_AUTH_ADD %s on the client tor: %v", onion, err)
		}
	}
	var node json.RawMessage
	if err := o.tcp(o.client).Do(ctx, http.MethodGet, "/v1/node", nil, &node); err != nil {
		b.Fatalf("GET /v1/node over TCP: %v", err)
	}
	body := []byte(node)
	peer.node.Store(&body)

	dial := (&hiddenservice.SOCKSDialer{Proxy: o.cli.SocksAddr}).DialContext
	var c [numPaths]*api.Client
	c[onionAPI], err = api.NewClientDialer(o.onion, o.client, o.node, dial)
	if err == nil {
		c[onionBare], err = api.NewClientDialer(peer.onion, o.client, peer.key, dial)
	}
	if err == nil {
		c[tcpBare], err = api.NewClient(peer.tcp, o.client, peer.key)
	}
	if err != nil {
		b.Fatal(err)
	}
	c[tcpAPI] = o.tcp(o.client)
	for i, cl := range c {
		warmUp(b, cl, o.cli, pathNames[i])
	}
	return c
}

// warmUp makes a path's first request, which opens its connection (and
// through an onion, fetches the descriptor and builds the circuits),
// retrying while a fresh onion may still be settling. A client tor
// stuck on a dead rendezvous (see hiddenservice's e2e test) gets a
// NEWNYM.
func warmUp(b *testing.B, cl *api.Client, cli *tornet.Client, what string) {
	deadline := time.Now().Add(3 * time.Minute)
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := cl.Node(ctx)
		cancel()
		if err == nil {
			return
		}
		var se *hiddenservice.SOCKSError
		if time.Now().After(deadline) || (errors.As(err, &se) && !se.Transient()) {
			b.Fatalf("%s: GET /v1/node: %v", what, err)
		}
		b.Logf("%s: GET /v1/node (attempt %d): %v", what, attempt, err)
		if !errors.As(err, &se) {
			newnym(b, cli)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func newnym(b *testing.B, cli *tornet.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctl, err := hiddenservice.Dial(ctx, "unix", cli.ControlSocket)
	if err == nil {
		err = ctl.Signal(ctx, "NEWNYM")
		ctl.Close()
	}
	if err != nil {
		b.Logf("NEWNYM on the client tor: %v", err)
	}
}

// nodeMemory is init's and tor's resident sets, in bytes, as GET
// /v1/node reports them and as the host's /proc/PID/status shows them.
type nodeMemory struct {
	initAPI, torAPI   uint64
	initProc, torProc uint64
}

func readNodeMemory(b *testing.B, o *onionNode) nodeMemory {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := o.unix().Node(ctx)
	if err != nil {
		b.Fatalf("GET /v1/node on the socket: %v", err)
	}
	if n.Tor == nil || n.Tor.RSS == 0 || n.Memory.InitRSS == 0 {
		b.Fatalf("GET /v1/node: want init's and tor's RSS, got memory %+v, tor %+v", n.Memory, n.Tor)
	}
	m := nodeMemory{initAPI: n.Memory.InitRSS, torAPI: n.Tor.RSS}
	m.initProc = vmRSS(b, o.pid)
	m.torProc = vmRSS(b, o.torPID(b))
	return m
}

func vmRSS(b *testing.B, pid int) uint64 {
	path := fmt.Sprintf("/proc/%d/status", pid)
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	rss, ok := parseKB(string(data))["VmRSS"]
	if !ok {
		b.Fatalf("%s: no VmRSS line", path)
	}
	return rss
}

func (m nodeMemory) sumMiB() float64 { return mib(m.initAPI + m.torAPI) }

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// onionSamples are BenchmarkOnion's times, per path.
type onionSamples struct {
	rounds int
	body   int   // bytes of GET /v1/node's answer
	size   int64 // bytes of the last image uploaded
	lat    [numPaths][]time.Duration
	upload [numPaths][]time.Duration
}

// requestsPerRound is how many GETs each path gets in a round.
const requestsPerRound = 50

// latencyRound times GET /v1/node on each path, round-robin, in an
// order that alternates from one request to the next.
func (s *onionSamples) latencyRound(b *testing.B, paths [numPaths]*api.Client, round int) {
	for j := range requestsPerRound {
		for k := range numPaths {
			p := k
			if (round*requestsPerRound+j)%2 == 1 {
				p = numPaths - 1 - k
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			t := time.Now()
			_, err := paths[p].Node(ctx)
			d := time.Since(t)
			cancel()
			if err != nil {
				b.Fatalf("%s: GET /v1/node #%d of round %d: %v", pathNames[p], j+1, round+1, err)
			}
			s.lat[p] = append(s.lat[p], d)
		}
	}
}

// uploadRound uploads a fresh image on each path: through the onion,
// then over TCP; API and bare alternate which goes first. The node's
// copies are removed afterwards (untimed).
func (s *onionSamples) uploadRound(b *testing.B, o *onionNode, paths [numPaths]*api.Client, bb []byte, round int) {
	for _, pair := range [][2]int{{onionAPI, onionBare}, {tcpAPI, tcpBare}} {
		data, digest := benchOnionImage(b, bb, uint64(round*numPaths+pair[0]))
		s.size = int64(len(data))
		if round%2 == 1 {
			pair[0], pair[1] = pair[1], pair[0]
		}
		for _, p := range pair {
			s.upload[p] = append(s.upload[p], uploadTime(b, paths[p], pathNames[p], digest, data))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := o.unix().RemoveImage(ctx, digest)
		cancel()
		if err != nil {
			b.Fatalf("DELETE /v1/images/%s: %v", digest, err)
		}
	}
}

func uploadTime(b *testing.B, cl *api.Client, what, digest string, data []byte) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t := time.Now()
	img, err := cl.Upload(ctx, digest, bytes.NewReader(data), int64(len(data)), api.UploadOptions{})
	d := time.Since(t)
	if err != nil {
		b.Fatalf("%s: upload of %s: %v", what, digest, err)
	}
	if img.Digest != digest {
		b.Fatalf("%s: upload of %s answered image %+v", what, digest, img)
	}
	return d
}

// benchOnionImage is an uncompressed native image of about
// onionImageSize bytes: the host's busybox (never run) and random bytes
// from seed, so it does not compress and its digest is new per seed.
func benchOnionImage(b *testing.B, busybox []byte, seed uint64) (data []byte, digest string) {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	random := make([]byte, max(1<<20, onionImageSize-len(busybox)))
	rand.NewChaCha8(key).Read(random)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		body []byte
	}{
		{"manifest.json", 0o644, []byte(`{"version":1,"name":"bench","command":["/bin/busybox","true"]}`)},
		{"rootfs/", 0o755, nil},
		{"rootfs/bin/", 0o755, nil},
		{"rootfs/bin/busybox", 0o755, busybox},
		{"rootfs/data", 0o644, random},
	} {
		h := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), Typeflag: tar.TypeReg}
		if f.body == nil {
			h.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			b.Fatal(err)
		}
		tw.Write(f.body)
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), "sha256:" + hex.EncodeToString(sum[:])
}

func (s *onionSamples) mbps(p int) []float64 {
	r := make([]float64, len(s.upload[p]))
	for i, d := range s.upload[p] {
		r[i] = float64(s.size) / 1e6 / d.Seconds()
	}
	return r
}

// ratios are the API's cost over the bare server's, on the onion (api
// = onionAPI) or over TCP: p50 and p90 latency, and the upload's time
// paired per round (median of the rounds' ratios).
func (s *onionSamples) ratios(api, bare int) (p50, p90, upload float64) {
	r := func(p int) float64 {
		return benchPercentile(s.lat[api], p).Seconds() / benchPercentile(s.lat[bare], p).Seconds()
	}
	return r(50), r(90), benchPairedRatio(s.upload[api], s.upload[bare])
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "NOT met"
}

func (s *onionSamples) print(w io.Writer, idle, busy nodeMemory) {
	fmt.Fprintf(w, "\nBenchmarkOnion: init's API vs a bare Go HTTPS server (same TLS), each behind its own onion on the private Tor network,\n"+
		"reached by the same client tor, and over loopback TCP. Latency: GET /v1/node (%d-byte answer), keep-alive, %d per path per round;\n"+
		"upload: a %.2f MB uncompressed .tar (busybox + random bytes), new digest per round and path. %d rounds.\n\n",
		s.body, requestsPerRound, float64(s.size)/1e6, s.rounds)
	fmt.Fprintf(w, "%-24s %8s %8s %10s  %s\n", "", "p50 ms", "p90 ms", "upload MB/s", "MB/s each round")
	for p := range numPaths {
		mb := s.mbps(p)
		each := ""
		for _, v := range mb {
			each += fmt.Sprintf("%.2f ", v)
		}
		fmt.Fprintf(w, "%-24s %8.2f %8.2f %10.2f  %s\n", pathNames[p], ms(benchPercentile(s.lat[p], 50)),
			ms(benchPercentile(s.lat[p], 90)), float64(s.size)/1e6/benchMedian(s.upload[p]).Seconds(), each)
	}
	p50, p90, up := s.ratios(onionAPI, onionBare)
	fmt.Fprintf(w, "\napi/bare through the onion: latency p50 %.3fx, p90 %.3fx; upload time %.3fx (paired per round)  goal <= %.2fx: %s\n",
		p50, p90, up, goalOnionRatio, verdict(p50 <= goalOnionRatio && up <= goalOnionRatio))
	p50, p90, up = s.ratios(tcpAPI, tcpBare)
	fmt.Fprintf(w, "api/bare over TCP:          latency p50 %.3fx, p90 %.3fx; upload time %.3fx (the node checks and unpacks, the peer discards)\n",
		p50, p90, up)

	fmt.Fprintf(w, "\n%-42s %9s %9s %9s\n", "resident set (MiB)", "init", "tor", "sum")
	row := func(label string, init, tor uint64) {
		fmt.Fprintf(w, "%-42s %9.1f %9.1f %9.1f\n", label, mib(init), mib(tor), mib(init+tor))
	}
	row("idle, published, no apps: GET /v1/node", idle.initAPI, idle.torAPI)
	row("idle: host /proc/PID/status VmRSS", idle.initProc, idle.torProc)
	row("after the traffic above: GET /v1/node", busy.initAPI, busy.torAPI)
	row("after: host /proc/PID/status VmRSS", busy.initProc, busy.torProc)
	fmt.Fprintf(w, "idle node, init + tor: %.1f MiB  goal < %d MiB: %s\n", idle.sumMiB(), goalNodeMiB, verdict(idle.sumMiB() < goalNodeMiB))
}

func (s *onionSamples) report(b *testing.B, idle nodeMemory) {
	b.ReportMetric(0, "ns/op") // the whole run's time means nothing here
	for p, name := range []string{"onion-api", "onion-bare", "tcp-api", "tcp-bare"} {
		b.ReportMetric(ms(benchPercentile(s.lat[p], 50)), name+"-p50-ms")
		b.ReportMetric(float64(s.size)/1e6/benchMedian(s.upload[p]).Seconds(), name+"-MB/s")
	}
	p50, _, up := s.ratios(onionAPI, onionBare)
	b.ReportMetric(p50, "api/bare-p50")
	b.ReportMetric(up, "api/bare-upload")
	b.ReportMetric(mib(idle.initAPI), "init-MiB")
	b.ReportMetric(mib(idle.torAPI), "tor-MiB")
	b.ReportMetric(idle.sumMiB(), "node-MiB")
}
