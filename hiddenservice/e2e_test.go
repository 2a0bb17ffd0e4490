package hiddenservice_test

import (
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"allium/internal/testkit"
	"allium/supervisor/restart"

	"allium/hiddenservice"
	"allium/internal/tornet"

	"golang.org/x/net/proxy"
)

const greeting = "hello from the onion"

// serviceDir is a directory for the service tor, reachable by the tor
// user when tor switches to one.
func serviceDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "ahs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	return dir
}

// torUser is debian-tor when the test runs as root and it exists, so
// the test covers tor's User switch as on the appliance.
func torUser() string {
	if os.Geteuid() != 0 {
		return ""
	}
	if _, err := user.Lookup("debian-tor"); err != nil {
		return ""
	}
	return "debian-tor"
}

// httpTarget serves greeting on 127.0.0.1 and returns its address.
func httpTarget(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, greeting) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// get fetches http://addr/ through dial, with a short timeout (tor's
// SOCKS port waits up to 2 min when it cannot build a path).
func get(ctx context.Context, dial dialFunc, addr string) (string, error) {
	c := &http.Client{Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}, Timeout: 15 * time.Second}
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// client is a client tor of the test, and what a CLI does with it.
type client struct {
	*tornet.Client
}

// unstick sends the client tor NEWNYM. After the service's circuits
// were torn down (tor killed, or the onion replaced), a client tor
// sometimes has an introduction acknowledged and then waits for a
// rendezvous that never comes, attaching every new stream to that
// dead circuit ("pending-join circ ... with intro ack. Stalling"):
// seen in about one run in four here, for as long as 90 s. NEWNYM
// makes its circuits unusable for new streams and purges its onion
// descriptors, so the next try starts afresh. It also forgets keys
// added by ONION_CLIENT_AUTH_ADD without Flags=Permanent.
func (c *client) unstick(ctx context.Context, t *testing.T) {
	ctl, err := hiddenservice.Dial(ctx, "unix", c.ControlSocket)
	if err != nil {
		t.Logf("%s: %v", c.Name, err)
		return
	}
	defer ctl.Close()
	if err := ctl.Signal(ctx, "NEWNYM"); err != nil {
		t.Logf("%s: NEWNYM: %v", c.Name, err)
	}
}

// getRetry retries get while the error may be transient: a descriptor
// not yet found, an introduction point gone after a restart, or a
// timeout (then the client is unstuck first).
func getRetry(ctx context.Context, t *testing.T, c *client, dial dialFunc, addr string, within time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		body, err := get(ctx, dial, addr)
		var se *hiddenservice.SOCKSError
		if err == nil || (errors.As(err, &se) && !se.Transient()) || ctx.Err() != nil {
			return body, err
		}
		t.Logf("retrying: %v", err)
		if !errors.As(err, &se) {
			c.unstick(ctx, t)
		}
		if !testkit.Sleep(ctx, 500*time.Millisecond) {
			return "", err
		}
	}
}

// xnetDial dials with golang.org/x/net/proxy, as a plain Go client
// would, and maps its text errors to this package's.
func xnetDial(t *testing.T, socks string) dialFunc {
	d, err := proxy.SOCKS5("tcp", socks, nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.(proxy.ContextDialer).DialContext(ctx, network, addr)
		return c, hiddenservice.MapSOCKSError(err, addr)
	}
}

func ownDial(socks string) dialFunc {
	return (&hiddenservice.SOCKSDialer{Proxy: socks}).DialContext
}

type onionTest struct {
	t       *testing.T
	net     *tornet.Network
	ctx     context.Context
	key     *ecdh.PrivateKey
	proc    *hiddenservice.Process
	onion   string // xxxx.onion
	addr    string // the onion, with port 80
	started time.Time
}

// startService runs a supervised service tor on the test network that
// publishes an onion for one client key, and waits until it is up.
func startService(t *testing.T, n *tornet.Network) *onionTest {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	ot := &onionTest{t: t, net: n, ctx: ctx, started: time.Now()}
	onionKey, _ := hiddenservice.NewKey()
	ot.key, _ = hiddenservice.NewClientKey()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	svc, err := hiddenservice.NewService(hiddenservice.Onion{Key: onionKey, Clients: []*ecdh.PublicKey{ot.key.PublicKey()}, Target: httpTarget(t)})
	if err != nil {
		t.Fatal(err)
	}
	svc.Log = log
	ot.onion = svc.Address()
	ot.addr = ot.onion + ":80"
	dir := serviceDir(t)
	extra := append(n.ClientLines(), debugLog("service")...)
	torLog, _ := os.Create(filepath.Join(dir, "tor.log"))
	t.Cleanup(func() { torLog.Close() })
	ot.proc, err = hiddenservice.NewProcess(hiddenservice.Options{
		Config: hiddenservice.Config{
			DataDir: filepath.Join(dir, "data"), ControlSocket: filepath.Join(dir, "run", "control"),
			User: torUser(), Extra: extra,
		},
		Exe: "/usr/sbin/tor", Starter: testkit.Starter, Service: svc, Stdout: torLog, Log: log,
		Policy: restart.Policy{Delay: 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- ot.proc.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		<-done
	})
	ot.waitPublished(1)
	return ot
}

// waitPublished waits until the starts-th tor has published the onion.
func (ot *onionTest) waitPublished(starts int) {
	ot.t.Helper()
	for {
		st := ot.proc.Status()
		if st.Starts == starts && st.Published {
			return
		}
		if ot.ctx.Err() != nil {
			ot.t.Fatalf("onion not published by tor #%d: %+v", starts, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (ot *onionTest) since() time.Duration { return time.Since(ot.started).Round(time.Millisecond) }

// TestOnionEndToEnd is issue 4's path on a real Tor network: an onion
// with v3 client authorization, reached by a client holding the key,
// refused to one without, back at the same address after tor is
// killed, and opened to the second client by ONION_CLIENT_AUTH_ADD.
func TestOnionEndToEnd(t *testing.T) {
	ot := startService(t, torNetwork(t))
	t.Logf("published %s after %s (tor user %q)", ot.addr, ot.since(), torUser())
	rss(t, "service tor", ot.proc.Status().PID)

	kc, err := ot.net.StartClient(ot.ctx, "keyed", func(c *tornet.Client) error {
		_, err := hiddenservice.WriteAuthPrivate(c.AuthDir, ot.onion, ot.key)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	keyed := &client{kc}
	t.Run("client with the key", func(t *testing.T) {
		body, err := getRetry(ot.ctx, t, keyed, xnetDial(t, keyed.SocksAddr), ot.addr, 60*time.Second)
		if err != nil || body != greeting {
			t.Fatalf("GET = %q, %v, want %q", body, err, greeting)
		}
		t.Logf("first request answered after %s", ot.since())
	})

	klc, err := ot.net.StartClient(ot.ctx, "keyless", nil)
	if err != nil {
		t.Fatal(err)
	}
	keyless := &client{klc}
	t.Run("client without the key", func(t *testing.T) {
		for name, dial := range map[string]dialFunc{"own dialer": ownDial(keyless.SocksAddr), "x/net/proxy": xnetDial(t, keyless.SocksAddr)} {
			_, err := getRetry(ot.ctx, t, keyless, dial, ot.addr, 60*time.Second)
			var se *hiddenservice.SOCKSError
			if !errors.Is(err, hiddenservice.ErrClientAuth) || !errors.As(err, &se) || se.Code != 0xF4 {
				t.Fatalf("%s: GET = %v, want SOCKS 0xF4 and ErrClientAuth", name, err)
			}
			t.Logf("%s: %v", name, err)
		}
	})

	t.Run("tor killed and restarted", func(t *testing.T) {
		syscall.Kill(ot.proc.Status().PID, syscall.SIGKILL)
		killed := time.Now()
		ot.waitPublished(2)
		t.Logf("republished %s after %s", ot.addr, time.Since(killed).Round(time.Millisecond))
		body, err := getRetry(ot.ctx, t, keyed, ownDial(keyed.SocksAddr), ot.addr, 90*time.Second)
		if err != nil || body != greeting {
			t.Fatalf("GET after the restart = %q, %v", body, err)
		}
		t.Logf("answering again %s after the kill", time.Since(killed).Round(time.Millisecond))
	})

	t.Run("ONION_CLIENT_AUTH_ADD", func(t *testing.T) {
		ctl, err := hiddenservice.Dial(ot.ctx, "unix", keyless.ControlSocket)
		if err != nil {
			t.Fatal(err)
		}
		defer ctl.Close()
		// Permanent: NEWNYM (unstick) would forget an ephemeral key.
		if err := ctl.AddClientAuth(ot.ctx, ot.onion, ot.key, hiddenservice.ClientAuthOptions{Name: "e2e", Permanent: true}); err != nil {
			t.Fatalf("AddClientAuth = %v", err)
		}
		body, err := getRetry(ot.ctx, t, keyless, ownDial(keyless.SocksAddr), ot.addr, 60*time.Second)
		if err != nil || body != greeting {
			t.Fatalf("GET after ONION_CLIENT_AUTH_ADD = %q, %v", body, err)
		}
	})

	t.Run("client key removed", func(t *testing.T) {
		second, _ := hiddenservice.NewClientKey()
		updated := time.Now()
		if err := ot.proc.UpdateClients([]*ecdh.PublicKey{second.PublicKey()}); err != nil {
			t.Fatal(err)
		}
		for st := ot.proc.Status(); !st.Published || st.PublishedAt.Before(updated); st = ot.proc.Status() {
			if ot.ctx.Err() != nil {
				t.Fatalf("not republished with the new client list: %+v", st)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("republished with the new client list %s after UpdateClients", time.Since(updated).Round(time.Millisecond))
		refusedWithin(t, ot, keyed, updated)
		ctl, err := hiddenservice.Dial(ot.ctx, "unix", keyless.ControlSocket)
		if err != nil {
			t.Fatal(err)
		}
		defer ctl.Close()
		if err := ctl.AddClientAuth(ot.ctx, ot.onion, second, hiddenservice.ClientAuthOptions{Name: "e2e", Permanent: true}); err != nil {
			t.Fatalf("AddClientAuth(new key) = %v", err) // 251: replaced the old key
		}
		body, err := getRetry(ot.ctx, t, keyless, ownDial(keyless.SocksAddr), ot.addr, 90*time.Second)
		if err != nil || body != greeting {
			t.Fatalf("GET with the new key = %q, %v", body, err)
		}
	})
	if st := ot.proc.Status(); st.Starts != 2 {
		t.Errorf("tor was started %d times, want 2 (one kill): %+v", st.Starts, st)
	}
	rss(t, "service tor", ot.proc.Status().PID)
}

// refusedWithin checks that a client whose key was removed is not
// served again, and says how it learns it. Its tor still holds the
// old, decryptable descriptor: it tries the old introduction points,
// then fetches the new descriptor and fails with 0xF5 (seen after 4 s
// to 63 s), or stalls (see client.unstick) until NEWNYM.
func refusedWithin(t *testing.T, ot *onionTest, c *client, since time.Time) {
	deadline := time.Now().Add(45 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(ot.ctx, 10*time.Second)
		body, err := get(ctx, ownDial(c.SocksAddr), ot.addr)
		cancel()
		if err == nil {
			t.Fatalf("GET with the removed key succeeded %s after UpdateClients: %q", time.Since(since).Round(time.Millisecond), body)
		}
		if last = err; errors.Is(err, hiddenservice.ErrClientAuth) {
			t.Logf("removed key refused %s after UpdateClients: %v", time.Since(since).Round(time.Millisecond), err)
			return
		}
		var se *hiddenservice.SOCKSError
		if !errors.As(err, &se) {
			c.unstick(ot.ctx, t)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Errorf("removed key not served, but no 0xF5 within %s of UpdateClients (last: %v)", time.Since(since).Round(time.Millisecond), last)
}

// debugLog is the torrc line that gives the service tor an info-level
// log in $ALLIUM_TORNET_DIR (see TestMain), for a post-mortem; none
// otherwise. (tornet gives its own tors one.)
func debugLog(name string) []string {
	keep := os.Getenv("ALLIUM_TORNET_DIR")
	if keep == "" {
		return nil
	}
	os.Chmod(keep, 0o777) // the service tor writes as its own user
	return []string{"Log info file " + filepath.Join(keep, name+"-info.log")}
}

// rss logs a process's resident set size.
func rss(t *testing.T, what string, pid int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			t.Logf("%s (pid %d) %s", what, pid, strings.Join(strings.Fields(l), " "))
		}
	}
}
