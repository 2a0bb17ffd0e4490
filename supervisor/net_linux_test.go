package supervisor

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"allium/internal/testkit"
	"allium/supervisor/isolation"
	"allium/supervisor/network"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The root tier of private networks: the real supervisor and shim, the
// real network package, in network namespaces the test makes. Nothing
// is sent outside them.
//
//	outside ns: up1 10.99.0.2/24, an HTTP server recording who calls
//	   │ veth
//	node ns:    up0 10.99.0.1/24; allium0 10.89.0.1/24, ip allium table
//	   │ veths on the bridge
//	web 10.89.0.2 (httpd :80, published)   client 10.89.0.3 (wget)

// link joins node and outside with a veth pair, up0 (node) and up1.
func link(t *testing.T, node, outside netns.NsHandle) {
	t.Helper()
	h, err := netlink.NewHandleAt(node)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "up0"}, PeerName: "up1", PeerNamespace: netlink.NsFd(outside)}); err != nil {
		t.Fatalf("veth up0-up1: %v", err)
	}
	for _, side := range []struct {
		ns         netns.NsHandle
		name, cidr string
	}{{node, "up0", "10.99.0.1/24"}, {outside, "up1", "10.99.0.2/24"}} {
		h, err := netlink.NewHandleAt(side.ns)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		l, err := h.LinkByName(side.name)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := netlink.ParseAddr(side.cidr)
		lo, _ := h.LinkByName("lo")
		for _, err := range []error{h.AddrAdd(l, a), h.LinkSetUp(l), h.LinkSetUp(lo)} {
			if err != nil {
				t.Fatalf("%s %s: %v", side.name, side.cidr, err)
			}
		}
	}
}

// outsideServer serves HTTP on 10.99.0.2 in the outside namespace and
// records the callers' addresses.
type outsideServer struct {
	port    int
	mu      sync.Mutex
	callers []string
}

func serveOutside(t *testing.T, outside netns.NsHandle) *outsideServer {
	t.Helper()
	var ln net.Listener
	if err := testkit.InNetNS(outside, func() (err error) { ln, err = net.Listen("tcp", "10.99.0.2:0"); return err }); err != nil {
		t.Fatal(err)
	}
	s := &outsideServer{port: ln.Addr().(*net.TCPAddr).Port}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.callers = append(s.callers, r.RemoteAddr)
		s.mu.Unlock()
		io.WriteString(w, "outside\n")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

// get fetches url with a socket made in ns, retrying until it answers
// or rootWait has passed; it returns the body, or the last error.
func get(ns netns.NsHandle, addr string) (string, error) {
	deadline := time.Now().Add(rootWait)
	for {
		var body string
		err := testkit.InNetNS(ns, func() error {
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "GET / HTTP/1.0\r\n\r\n")
			b, err := io.ReadAll(c)
			body = string(b)
			return err
		})
		if err == nil || time.Now().After(deadline) {
			return body, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// refused reports whether a connection to addr from ns is refused.
func refused(ns netns.NsHandle, addr string) error {
	return testkit.InNetNS(ns, func() error {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err == nil {
			c.Close()
			return fmt.Errorf("dial %s: connected", addr)
		}
		if !strings.Contains(err.Error(), "refused") {
			return err
		}
		return nil
	})
}

func TestRootPrivateNetwork(t *testing.T) {
	testkit.NeedRoot(t)
	node, outside := testkit.NetNS(t), testkit.NetNS(t)
	link(t, node, outside)
	out := serveOutside(t, outside)
	n, err := network.New(network.Options{NetNS: int(node)})
	if err != nil {
		t.Fatal(err)
	}
	web, client := netip.MustParseAddr("10.89.0.2"), netip.MustParseAddr("10.89.0.3")
	for _, p := range []network.Publish{
		{Name: "web", Addr: web, Ports: []network.Port{{Port: 80}}},
		{Name: "client", Addr: client},
	} {
		if err := n.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Add(network.Publish{Name: "other", Addr: netip.MustParseAddr("10.89.0.4"), Ports: []network.Port{{Port: 80, Proto: "tcp"}}}); err == nil {
		t.Errorf("Add(other, port 80 of web's) = nil, want ErrPortTaken")
	}

	h := newRootHarness(t)
	exe, _ := os.Executable()
	h.sup = New(Options{Exe: exe, Starter: testkit.Starter, Rand: half, OnEvent: h.record, Network: n,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	root, logs := nsRoot(t), t.TempDir()
	os.Symlink("busybox", filepath.Join(root, "bin", "wget"))
	h.add(Spec{Name: "web", Root: root, Rung: isolation.Namespaces, PrivateNet: true,
		Command: []string{"httpd", "-f", "-p", "80", "-h", "/www"}})
	script := fmt.Sprintf(`until wget -q -O - http://%s/; do sleep 0.1; done
until wget -q -O - http://10.99.0.2:%d/; do sleep 0.1; done
exec sleep 1000`, web, out.port)
	h.add(Spec{Name: "client", Root: root, LogDir: logs, Rung: isolation.Namespaces, PrivateNet: true,
		Command: []string{"sh", "-c", script}})

	// Through the bridge, by address; and out through the node, NATed.
	waitLog(t, logs, "stdout hello", "stdout outside")
	out.mu.Lock()
	callers := out.callers
	out.mu.Unlock()
	if len(callers) == 0 || !strings.HasPrefix(callers[0], "10.99.0.1:") {
		t.Errorf("the outside host saw callers %q, want the node's 10.99.0.1 (masquerade)", callers)
	}

	// A published port, on the node's address: from outside
	// (prerouting) and from the node itself (output).
	for _, from := range []struct {
		name string
		ns   netns.NsHandle
	}{{"outside", outside}, {"node", node}} {
		if body, err := get(from.ns, "10.99.0.1:80"); err != nil || !strings.Contains(body, "hello") {
			t.Errorf("GET 10.99.0.1:80 from %s = %q, %v, want hello from web", from.name, body, err)
		}
	}

	// A new run attaches afresh, at the same address. (Regression: its
	// new veth had a new MAC, and the node's ARP cache sent the
	// published port's packets to the old one for half a minute.)
	h.sup.Signal(t.Context(), "web", unix.SIGKILL)
	h.waitMatch("second start of web", 2, func(ev Event) bool { return ev.Type == EventStart && ev.Container == "web" })
	if body, err := get(outside, "10.99.0.1:80"); err != nil || !strings.Contains(body, "hello") {
		t.Errorf("after a restart, GET 10.99.0.1:80 from outside = %q, %v, want hello", body, err)
	}

	// Removal takes the port off the node.
	if err := h.sup.Remove(t.Context(), "web"); err != nil {
		t.Fatal(err)
	}
	if err := n.Remove("web"); err != nil {
		t.Fatal(err)
	}
	if err := refused(outside, "10.99.0.1:80"); err != nil {
		t.Errorf("after removal, port 80 on the node: %v, want refused", err)
	}
	hn, _ := netlink.NewHandleAt(node)
	defer hn.Close()
	if _, err := hn.LinkByName(network.HostLink("web")); err == nil {
		t.Errorf("after removal, the node still has web's veth %s", network.HostLink("web"))
	}
}

// A run whose network cannot be attached never starts its workload: it
// is killed and counted as a failure, with the reason in its status.
func TestRootPrivateNetworkAttachFails(t *testing.T) {
	testkit.NeedRoot(t)
	node := testkit.NetNS(t)
	n, err := network.New(network.Options{NetNS: int(node)})
	if err != nil {
		t.Fatal(err)
	}
	// Never Added: Attach fails with ErrUnknown.
	h := newRootHarness(t)
	exe, _ := os.Executable()
	h.sup = New(Options{Exe: exe, Starter: testkit.Starter, Rand: half, OnEvent: h.record, Network: n,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	root := nsRoot(t)
	marker := filepath.Join(root, "ran")
	h.add(Spec{Name: "lost", Root: root, Rung: isolation.Namespaces, PrivateNet: true,
		Command: []string{"sh", "-c", "touch /ran; exec sleep 1000"}})
	ex := h.waitMatch("exit of lost", 1, func(ev Event) bool { return ev.Type == EventExit })[0]
	if ex.Exit == nil || ex.Exit.Signal != "SIGKILL" || ex.State != Backoff {
		t.Errorf("exit event %+v, want killed by SIGKILL and a restart (backoff)", ex)
	}
	st, _ := h.sup.Status("lost")
	if !strings.Contains(st.Error, "network") {
		t.Errorf("Status(lost).Error = %q, want the network's failure", st.Error)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the workload ran although its network was not attached")
	}
}
