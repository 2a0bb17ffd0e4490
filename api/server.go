package api

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
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
}

// Server serves one handler set on any number of listeners.
type Server struct {
	backend Backend
	log     *slog.Logger
	tls     *tls.Config
	mux     *http.ServeMux

	mu      sync.Mutex
	servers []*http.Server
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

func (s *Server) routes() {
	s.mux.HandleFunc("GET /v1/node", s.getNode)
	s.mux.HandleFunc("POST /v1/node/reboot", s.action("rebooting", s.backend.Reboot))
	s.mux.HandleFunc("POST /v1/node/poweroff", s.action("powering off", s.backend.Poweroff))
	s.mux.HandleFunc("PUT /v1/node/tcp", s.putTCP)
	s.appRoutes()
	s.keyRoutes()
	s.mux.HandleFunc("/", s.notFound)
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

func (s *Server) getNode(w http.ResponseWriter, r *http.Request) {
	n, err := s.backend.Node(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, CodeInternal, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, n)
}

func (s *Server) action(status string, do func() error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := do(); err != nil {
			writeError(w, http.StatusConflict, CodeUnavailable, err.Error())
			return
		}
		writeJSON(w, http.StatusAccepted, Accepted{Status: status})
	}
}

// ServeTLS serves on a TCP listener: TLS 1.3, and only
// authorized client keys. It returns when the listener is closed.
func (s *Server) ServeTLS(ln net.Listener) error {
	return s.serve(tls.NewListener(ln, s.tls), withVia(s.requireKey(s.mux), ViaTCP))
}

// ServeUnix serves on a unix socket, to root only (by SO_PEERCRED).
func (s *Server) ServeUnix(ln net.Listener) error {
	return s.serve(ln, withVia(requireRoot(s.mux), ViaUnix))
}

func (s *Server) serve(ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           s.recover(h),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
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

func (s *Server) requireKey(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			writeError(w, http.StatusUnauthorized, CodeUnauthorized, "no client certificate")
			return
		}
		pub, ok := r.TLS.PeerCertificates[0].PublicKey.(ed25519.PublicKey)
		var role string
		if ok {
			role, ok = s.backend.Authorize(pub)
		}
		if !ok {
			s.log.Warn("api: refused an unknown client key", "remote", r.RemoteAddr, "key", fmt.Sprint(fingerprintOf(pub)))
			writeError(w, http.StatusUnauthorized, CodeUnauthorized,
				fmt.Sprintf("client key %s is not authorized on this node", fingerprintOf(pub)))
			return
		}
		c := caller{key: pub, role: role}
		if !mayDo(role, r.Method) {
			e := forbidden(c, r)
			writeError(w, e.Status, e.Code, e.Message)
			return
		}
		h.ServeHTTP(w, withCaller(r, c))
	})
}

func fingerprintOf(pub ed25519.PublicKey) string {
	if len(pub) != ed25519.PublicKeySize {
		return "(not ed25519)"
	}
	return Fingerprint(pub)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) // the client sees a truncated body if this fails
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, Error{Message: msg, Code: code})
}
