package api

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// Backend is what the node does; the server only speaks HTTP for it.
type Backend interface {
	Node(ctx context.Context) (Node, error)
	// Reboot and Poweroff start an orderly shutdown and return at once;
	// the server answers before the shutdown takes the listeners away.
	Reboot() error
	Poweroff() error
	// Uninstall undoes what install.sh did, so that the system the node
	// was installed over comes back, starts a reboot into it, and says
	// what it did; an error when the node was not installed over one.
	Uninstall() (string, error)
	// SetTCP switches the API's TCP listener on or off, and keeps the
	// choice across reboots.
	SetTCP(on bool) error
	// Authorize returns the role of a client key (RoleAdmin,
	// RoleViewer), and false when the key may not use the API. It is
	// asked on every request, so a removed key is refused from the
	// next request on, even on a connection that is already open.
	Authorize(key ed25519.PublicKey) (role string, ok bool)
	// Apps is the node's images and containers.
	Apps
	// KeyStore is the node's authorized client keys.
	KeyStore
	// Updater takes new inits (update.go).
	Updater
}

// Apps is the node's images and containers: what the handlers of
// /v1/images, /v1/containers and /v1/events ask of the node. Each part
// is declared beside its handlers.
//
// The handlers validate digests and container names before calling, so
// an implementation sees only well-formed ones. To answer with an honest
// status, a method returns an *Error made by NotFound, Conflict,
// BadRequest, TooLarge, Unavailable or NotImplemented (wrapped or not);
// PutImage returns OffsetMismatch when the client's offset is not what
// the node kept. Any other error answers 500 with its text.
type Apps interface {
	ImageStore     // server_images.go
	ContainerStore // server_containers.go
	EventLog       // server_events.go
}

// Server serves one handler set on any number of listeners.
type Server struct {
	backend Backend
	log     *slog.Logger
	tls     *tls.Config
	mux     *http.ServeMux

	// TCP and Onion bound the connections of ServeTLS and ServeOnion
	// (server_limit.go); set them before serving. Their zero values
	// are the defaults.
	TCP, Onion Limits

	strangers sampledLog // the log of refused keys

	mu      sync.Mutex
	servers []*http.Server
	gates   []*gate
}

// NewServer makes a server for backend whose TLS identity is key.
func NewServer(backend Backend, key ed25519.PrivateKey, log *slog.Logger) (*Server, error) {
	cfg, err := ServerTLS(key)
	if err != nil {
		return nil, err
	}
	s := &Server{backend: backend, log: log, tls: cfg, mux: http.NewServeMux()}
	s.routes()
	return s, nil
}

// routes is the API: every endpoint and the handler that serves it.
func (s *Server) routes() {
	for _, r := range []struct {
		pattern string
		handle  http.HandlerFunc
	}{
		{"GET /v1/node", s.getNode},
		{"POST /v1/node/reboot", s.action("rebooting", s.backend.Reboot)},
		{"POST /v1/node/poweroff", s.action("powering off", s.backend.Poweroff)},
		{"POST /v1/node/uninstall", s.uninstall},
		{"PUT /v1/node/tcp", s.putTCP},
		{"HEAD /v1/node/init/{digest}", headUpload(s, s.initUpload())},
		{"GET /v1/node/init/{digest}", getByDigest(s, s.backend.Init)},
		{"PUT /v1/node/init/{digest}", putUpload(s, s.initUpload())},
		{"POST /v1/node/update", s.switchInit},

		{"GET /v1/images", s.listImages},
		{"GET /v1/uploads", s.listUploads},
		{"GET /v1/images/{digest}", getByDigest(s, s.backend.Image)},
		{"DELETE /v1/images/{digest}", s.deleteImage},
		{"HEAD /v1/images/{digest}", headUpload(s, s.imageUpload())},
		{"PUT /v1/images/{digest}", putUpload(s, s.imageUpload())},

		{"GET /v1/containers", s.listContainers},
		{"GET /v1/containers/{name}", s.container(ContainerStore.Container)},
		{"PUT /v1/containers/{name}", s.putContainer},
		{"DELETE /v1/containers/{name}", s.deleteContainer},
		{"POST /v1/containers/{name}/start", s.container(ContainerStore.StartContainer)},
		{"POST /v1/containers/{name}/stop", s.container(ContainerStore.StopContainer)},
		{"POST /v1/containers/{name}/restart", s.container(ContainerStore.RestartContainer)},
		{"POST /v1/containers/{name}/kill", s.killContainer},
		{"GET /v1/containers/{name}/logs", s.logs},
		{"GET /v1/containers/{name}/stats", s.containerStats},

		{"GET /v1/events", s.events},

		{"GET /v1/keys", s.listKeys},
		{"POST /v1/keys", s.addKey},
		{"DELETE /v1/keys/{id...}", s.removeKey},

		{"/", s.notFound},
	} {
		s.mux.HandleFunc(r.pattern, r.handle)
	}
}

// notFound answers what no other route took. Because "/" matches every
// method, ServeMux sends a known path with the wrong method here too
// instead of answering its own plain-text 405, so the methods the path
// does take are looked up to tell the two apart.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	allow := s.allowed(r)
	if len(allow) == 0 {
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, http.StatusMethodNotAllowed, CodeMethod,
		fmt.Sprintf("%s %s: method not allowed, use %s", r.Method, r.URL.Path, strings.Join(allow, " or ")))
}

// allowed lists the methods for which a route other than "/" takes r's path.
func (s *Server) allowed(r *http.Request) []string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host}
		if _, pattern := s.mux.Handler(probe); pattern != "/" {
			allow = append(allow, m)
		}
	}
	return allow
}

// Listener names of Via.
const (
	ViaTCP   = "tcp"
	ViaOnion = "onion"
	ViaUnix  = "unix"
)

type viaKey struct{}

// Via names the listener a request came in on: ViaTCP, ViaOnion or
// ViaUnix.
func Via(ctx context.Context) string {
	v, _ := ctx.Value(viaKey{}).(string)
	return v
}

func withVia(h http.Handler, via string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), viaKey{}, via)))
	})
}

// ServeTLS serves on a TCP listener: TLS 1.3, and only
// authorized client keys, within the limits of s.TCP. It returns when
// the listener is closed.
func (s *Server) ServeTLS(ln net.Listener) error {
	return s.serveGated(ln, s.TCP, withVia(s.requireKey(s.mux), ViaTCP))
}

// ServeOnion serves the listener tor forwards the onion's connections
// to: the same TLS and keys as ServeTLS, within the limits of s.Onion,
// and Via says "onion".
func (s *Server) ServeOnion(ln net.Listener) error {
	return s.serveGated(ln, s.Onion, withVia(s.requireKey(s.mux), ViaOnion))
}

// ServeUnix serves on a unix socket, to root only (by SO_PEERCRED). It
// has no connection cap: only root on the node can connect.
func (s *Server) ServeUnix(ln net.Listener) error {
	return s.serve(ln, withVia(requireRoot(s.mux), ViaUnix), DefaultIdle)
}

// serveGated serves TLS on ln through a gate with lim.
func (s *Server) serveGated(ln net.Listener, lim Limits, h http.Handler) error {
	g := newGate(lim, s.authorized, s.log)
	s.mu.Lock()
	s.gates = append(s.gates, g)
	s.mu.Unlock()
	return s.serve(tls.NewListener(gateListener{ln, g}, g.tlsConfig(s.tls)), h, g.lim.Idle)
}

func (s *Server) authorized(pub ed25519.PublicKey) bool {
	_, ok := s.backend.Authorize(pub)
	return ok
}

// ConnStats sums the connections of the TLS listeners served so far.
func (s *Server) ConnStats() ConnStats {
	s.mu.Lock()
	gates := s.gates
	s.mu.Unlock()
	var st ConnStats
	for _, g := range gates {
		st = st.Add(g.stats())
	}
	return st
}

func (s *Server) serve(ln net.Listener, h http.Handler, idle time.Duration) error {
	srv := &http.Server{
		Handler:           s.recover(h),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       idle,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnContext:       connContext,
	}
	s.mu.Lock()
	s.servers = append(s.servers, srv)
	s.mu.Unlock()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops every listener, letting requests in flight finish until
// ctx ends.
func (s *Server) Shutdown(ctx context.Context) {
	s.mu.Lock()
	servers := s.servers
	s.mu.Unlock()
	for _, srv := range servers {
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
	}
}

// recover turns a panicking handler into a 500 for that one request.
func (s *Server) recover(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("api: handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				writeError(w, http.StatusInternalServerError, CodeInternal, "internal error (the node logged it)")
			}
		}()
		h.ServeHTTP(w, r)
	})
}
