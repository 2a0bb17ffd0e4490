package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"allium/api"
	"allium/internal/testbin"
	"allium/internal/testkit"
	"allium/rootfs"
	"allium/supervisor/isolation"
)

// The root tier: the real init binary as PID 1 of a fresh pid and mount
// namespace, chrooted, in OS-container mode (as OpenVZ starts it).

// requireRoot skips t outside the root tier, or without util-linux's
// unshare and nsenter.
func requireRoot(t testing.TB) {
	t.Helper()
	testkit.NeedRoot(t)
	for _, tool := range []string{"unshare", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("root tier: %s not found (apt-get install util-linux)", tool)
		}
	}
}

// containerNode is an init running as PID 1 of its own namespaces.
type containerNode struct {
	t      testing.TB
	dir    string // the chroot
	cmd    *exec.Cmd
	pid    int // init's pid on the host
	port   int
	addr   string // the node's address from the host; "" is 127.0.0.1
	client ed25519.PrivateKey
	node   ed25519.PublicKey
	logs   *testkit.LockedBuffer
	done   chan error    // init's exit, once, for the test
	exited chan struct{} // closed when init has exited, for the cleanup
}

// newChroot lays out the root an OS container's init would find.
func newChroot(t testing.TB, bin string) (dir string, port int, client ed25519.PrivateKey, node ed25519.PublicKey) {
	t.Helper()
	dir = t.TempDir()
	b, _ := os.ReadFile(bin)
	write := func(name string, data []byte, mode os.FileMode) {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("init", b, 0o755)
	port = freePort(t)
	write(rootfs.NodeConfigFile, fmt.Appendf(nil, `{"name":"ct1","port":%d}`, port), 0o600)
	nodeKey, _ := api.NewKey()
	pem, _ := api.MarshalPrivateKey(nodeKey)
	write(rootfs.NodeKeyFile, pem, 0o600)
	client, _ = api.NewKey()
	write(rootfs.AuthorizedKeysFile, api.FormatAuthorizedKeys([]api.AuthorizedKey{{Key: client.Public().(ed25519.PublicKey), Name: "admin"}}), 0o644)
	return dir, port, client, nodeKey.Public().(ed25519.PublicKey)
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startContainerNode(t testing.TB, dir string, port int, client ed25519.PrivateKey, node ed25519.PublicKey) *containerNode {
	return startContainerNodeWith(t, dir, port, client, node, nil)
}

// startContainerNodeWith starts init as startContainerNode does, with
// the host's directories binds (such as /usr, for tor and its
// libraries) bound at the same paths in its root, in its own mount
// namespace.
func startContainerNodeWith(t testing.TB, dir string, port int, client ed25519.PrivateKey, node ed25519.PublicKey, binds []string) *containerNode {
	t.Helper()
	return startContainerNodeAs(t, dir, port, client, node, binds, "allium-test", []string{"/init", "-z"})
}

// startContainerNodeAs starts init as startContainerNodeWith does, with
// container=containerEnv and argv (its path in the root, then its
// arguments), as an OS container's manager would.
func startContainerNodeAs(t testing.TB, dir string, port int, client ed25519.PrivateKey, node ed25519.PublicKey, binds []string, containerEnv string, argv []string) *containerNode {
	t.Helper()
	return startContainer(t, dir, port, client, node, ctOpts{binds: binds, env: containerEnv, argv: argv})
}

// ctOpts is how startContainer starts an OS container's init.
type ctOpts struct {
	binds []string // host directories bound at the same paths
	env   string   // container=
	argv  []string // init's path in the root, then its arguments
	// openvz adds what vzctl gives a container besides the pid and
	// mount namespaces: uts, ipc and net namespaces (a veth pair,
	// addressed from the host, as OpenVZ sets its venet up before init
	// runs), and a capability bounding set without CAP_SYS_MODULE and
	// the others a container is denied.
	openvz bool
	// subnet is the /30's third octet in 10.231.X.0 for openvz: the
	// host is .1, the container .2.
	subnet int
}

// openvzDenied are the capabilities an OpenVZ container's root lacks
// (setpriv's names).
const openvzDenied = "-sys_module,-sys_rawio,-sys_time,-mac_admin,-mac_override,-audit_control"

func startContainer(t testing.TB, dir string, port int, client ed25519.PrivateKey, node ed25519.PublicKey, o ctOpts) *containerNode {
	t.Helper()
	binds, containerEnv, argv := o.binds, o.env, o.argv
	c := &containerNode{t: t, dir: dir, port: port, client: client, node: node, logs: &testkit.LockedBuffer{}, done: make(chan error, 1), exited: make(chan struct{})}
	// The root is a mount point, as an OS container's is (a chroot into
	// a plain directory is not: a mount namespace there cannot be made
	// private, and the probe says so). sh execs chroot, which execs
	// init: PID 1 all along.
	const script = `root=$1; shift; mount --bind "$root" "$root" || exit 1; ` +
		`while [ "$1" != -- ]; do d=$1; shift; mkdir -p "$root$d" && mount --bind "$d" "$root$d" || exit 1; done; shift; ` +
		`exec chroot "$root" "$@"`
	ns := []string{"--pid", "--mount", "--fork", "--propagation", "private"}
	sc := script
	if o.openvz {
		ns = append(ns, "--uts", "--ipc", "--net")
		sc = strings.Replace(script, `exec chroot`, `exec setpriv --bounding-set `+openvzDenied+` -- chroot`, 1)
	}
	args := append(append(ns, "sh", "-c", sc, "sh", dir), binds...)
	args = append(append(args, "--"), argv...)
	c.cmd = exec.Command("unshare", args...)
	c.cmd.Env = []string{"container=" + containerEnv, "PATH=/sbin:/bin"}
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := c.cmd.Wait()
		close(c.exited)
		c.done <- err
	}()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		if c.pid > 0 {
			syscall.Kill(c.pid, syscall.SIGKILL)
		}
		select {
		case <-c.exited: // the test may have taken its exit from done
		case <-time.After(10 * time.Second):
		}
		if t.Failed() || os.Getenv("ALLIUM_SHOW_CONSOLE") != "" {
			t.Logf("init's console:\n%s", c.logs)
		}
	})
	c.pid = c.waitChild()
	if o.openvz {
		c.addr = c.venet(o.subnet)
	}
	return c
}

// venet gives the container's net namespace a veth pair to the host,
// the container's end addressed, as OpenVZ does before init runs, and
// returns the container's address.
func (c *containerNode) venet(subnet int) string {
	c.t.Helper()
	host, ct := fmt.Sprintf("10.231.%d.1", subnet), fmt.Sprintf("10.231.%d.2", subnet)
	link := fmt.Sprintf("vzt%d", c.pid)
	pid := strconv.Itoa(c.pid)
	for _, cmd := range [][]string{
		{"ip", "link", "add", link, "type", "veth", "peer", "name", "venet0", "netns", pid},
		{"ip", "addr", "add", host + "/30", "dev", link},
		{"ip", "link", "set", link, "up"},
		{"nsenter", "-t", pid, "-n", "ip", "link", "set", "lo", "up"},
		{"nsenter", "-t", pid, "-n", "ip", "addr", "add", ct + "/30", "dev", "venet0"},
		{"nsenter", "-t", pid, "-n", "ip", "link", "set", "venet0", "up"},
		{"nsenter", "-t", pid, "-n", "ip", "route", "add", "default", "via", host},
	} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			c.t.Fatalf("%s: %v\n%s", strings.Join(cmd, " "), err, out)
		}
	}
	return ct
}

// waitChild finds init: the child unshare forked into the new namespace.
func (c *containerNode) waitChild() int {
	p := fmt.Sprintf("/proc/%d/task/%d/children", c.cmd.Process.Pid, c.cmd.Process.Pid)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(p)
		if f := strings.Fields(string(b)); len(f) > 0 {
			pid, _ := strconv.Atoi(f[0])
			return pid
		}
	}
	c.t.Fatalf("unshare never forked init")
	return 0
}

// unix is a client on init's socket, reached through its root.
func (c *containerNode) unix() *api.Client {
	return api.NewUnixClient(fmt.Sprintf("/proc/%d/root%s", c.pid, rootfs.Socket))
}

func (c *containerNode) waitUp() api.Node {
	c.t.Helper()
	var last error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		n, err := c.unix().Node(ctx)
		cancel()
		if err == nil {
			return n
		}
		last = err
	}
	c.t.Fatalf("init never answered on its socket: %v", last)
	return api.Node{}
}

func (c *containerNode) tcp(key ed25519.PrivateKey) *api.Client {
	addr := c.addr
	if addr == "" {
		addr = "127.0.0.1"
	}
	cl, err := api.NewClient(net.JoinHostPort(addr, strconv.Itoa(c.port)), key, c.node)
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// waitLog waits for the console to match re.
func (c *containerNode) waitLog(re string) string {
	c.t.Helper()
	rx := regexp.MustCompile(re)
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m := rx.FindString(c.logs.String()); m != "" {
			return m
		}
	}
	c.t.Fatalf("init's console never matched %q", re)
	return ""
}

func TestPID1InOSContainer(t *testing.T) {
	requireRoot(t)
	bin := testbin.Path(t, "init")
	dir, port, client, node := newChroot(t, bin)
	c := startContainerNode(t, dir, port, client, node)
	ctx := context.Background()

	n := c.waitUp()
	if n.Environment != api.EnvContainer || n.Name != "ct1" || n.BootCount != 1 || !n.Persistent {
		t.Errorf("GET /v1/node on the socket = %+v, want container ct1, boot 1, persistent", n)
	}
	// The isolation probe ran at boot (in the background), by real
	// clones from inside the OS container; this machine allows the
	// namespaces rung at least.
	iso := n.Isolation
	for deadline := time.Now().Add(20 * time.Second); iso == nil && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m, err := c.unix().Node(ctx); err == nil {
			iso = m.Isolation
		}
	}
	if iso == nil || iso.Highest == "chroot" || iso.Highest == "" {
		t.Errorf("GET /v1/node isolation = %+v, want the namespaces rung or more", iso)
	} else {
		t.Logf("isolation: %s, cgroup %q, missing %v", iso.Highest, iso.Cgroup, iso.Missing)
	}
	if iso != nil {
		osContainerRuns(t, c, iso)
	}
	c.waitLog(`api: listening" network=tcp`)
	if _, err := c.tcp(client).Node(ctx); err != nil {
		t.Errorf("GET /v1/node over TLS with the authorized key: %v", err)
	}
	stranger, _ := api.NewKey()
	var apiErr *api.Error
	if err := c.tcp(stranger).Poweroff(ctx); !errors.As(err, &apiErr) || apiErr.Status != 401 {
		t.Errorf("POST /v1/node/poweroff with an unknown key = %v, want a 401", err)
	}

	// An orphan: sh starts sleep and exits, so sleep is reparented to init.
	out, err := exec.Command("nsenter", "-t", strconv.Itoa(c.pid), "-p", "--", "/bin/sh", "-c", "sleep 1 & echo $!").Output()
	if err != nil {
		t.Fatalf("nsenter: %v", err)
	}
	orphan := strings.TrimSpace(string(out))
	c.waitLog(`reaped an orphan" pid=` + regexp.QuoteMeta(orphan) + ` status="exit 0"`)
	if z := zombiesOf(c.pid); len(z) > 0 {
		t.Errorf("zombies left under init: %v", z)
	}

	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE} {
		if err := syscall.Kill(c.pid, sig); err != nil {
			t.Fatal(err)
		}
	}
	c.waitLog(`signal: ignored" signal="user defined signal 2"`)
	if _, err := c.unix().Node(ctx); err != nil {
		t.Fatalf("init stopped answering after SIGHUP/SIGUSR1/SIGUSR2/SIGPIPE: %v", err)
	}

	syscall.Kill(c.pid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("init did not exit within 30 s of SIGTERM")
	}
	checkOrder(t, c.logs.String(), "signal: powering off", "shutdown: stopping processes",
		"shutdown: closing state", "shutdown: unmounting", "shutdown: power off")

	// State persisted on the container's root: the next boot is boot 2.
	c2 := startContainerNode(t, dir, port, client, node)
	if n := c2.waitUp(); n.BootCount != 2 {
		t.Errorf("second boot: boot_count = %d, want 2", n.BootCount)
	}
	syscall.Kill(c2.pid, syscall.SIGTERM)
	<-c2.done
}

// osContainerRuns pushes an image to the node in its OS container and
// runs it: at the rung the node said containers get, which is below the
// userns rung: the kernel lets no chrooted process (this init) make a
// user namespace. The QEMU tier runs the same kind of image at the top.
func osContainerRuns(t *testing.T, c *containerNode, iso *api.Isolation) {
	t.Helper()
	ctx := context.Background()
	digest := pushBusybox(t, c, `{"version": 1, "name": "sleeper", "command": ["/bin/busybox", "sleep", "1000"]}`, nil)
	got, err := c.unix().PutContainer(ctx, "sleeper", api.ContainerRequest{Image: digest})
	for deadline := time.Now().Add(20 * time.Second); err == nil && got.State != api.StateRunning && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		got, err = c.unix().Container(ctx, "sleeper")
	}
	if err != nil || got.State != api.StateRunning || got.Isolation != iso.Containers || got.IDs != "" {
		t.Errorf("the container in the OS container = %+v, %v; want running at %s without a range of ids", got, err, iso.Containers)
	}
	if r, err := isolation.ParseRung(got.Isolation); err != nil || r >= isolation.Userns {
		t.Errorf("the container in the OS container runs at %q (%v); want below userns (a chrooted init may make no user namespace)", got.Isolation, err)
	}
	if err := c.unix().RemoveContainer(ctx, "sleeper"); err != nil {
		t.Errorf("remove: %v", err)
	}
}

// checkOrder checks that each marker appears in logs after the previous.
func checkOrder(t *testing.T, logs string, markers ...string) {
	t.Helper()
	at := 0
	for _, m := range markers {
		i := strings.Index(logs[at:], m)
		if i < 0 {
			t.Errorf("console: %q missing or out of order (after byte %d)", m, at)
			return
		}
		at += i + len(m)
	}
}

// zombiesOf lists the zombie children of pid.
func zombiesOf(pid int) []string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var z []string
	for _, child := range strings.Fields(string(b)) {
		st, _ := os.ReadFile("/proc/" + child + "/stat")
		if f := strings.Fields(string(st)); len(f) > 2 && f[2] == "Z" {
			z = append(z, child)
		}
	}
	return z
}
