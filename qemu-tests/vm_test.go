package qemutests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"allium/api"
)

// Deadlines and polling. TCG on a loaded 2-core machine is slow and noisy;
// the deadlines are generous on purpose, and no test asserts a time.
const (
	firstAnswer  = 90 * time.Second       // QEMU start (or a reboot) to an API answer
	exitWithin   = 30 * time.Second       // an API power-off to QEMU exiting
	buttonExit   = 60 * time.Second       // system_powerdown to QEMU exiting
	pollEvery    = 20 * time.Millisecond  // reading a serial file
	probeEvery   = 100 * time.Millisecond // starting a cloud info probe (see waitNode)
	maxProbes    = 20                     // cloud info probes in flight at most
	probeTimeout = "3s"                   // cloud --timeout of one probe
)

// appliance is the output of one `mkimage appliance` and the client
// config that reaches it.
type appliance struct {
	env
	name   string
	root   string // the test's directory for this appliance
	dir    string // -o
	config string // --config, the client side
	port   int    // the node's API port, forwarded from the same host port
	noData bool
	// disk boots with mkimage qemu --disk: disk.img, the PyGrub disk,
	// instead of data.img.
	disk bool
	mem  int // the guest's memory in MiB; 0 is mkimage qemu's default
	// forwards are mkimage qemu's --forward HOST:GUEST, which reach a
	// container's port; add them with forward before boot.
	forwards []string
}

type buildOpts struct {
	noData     bool
	init       string // --init; "" is env.init
	port       int    // 0: a free port
	appendArgs string // --append
	noTor      bool   // --no-tor
	mem        int    // the guest's memory in MiB (mkimage qemu --mem); 0: its default
}

// newAppliance runs mkimage appliance into a temporary directory.
func newAppliance(tb testing.TB, e env, name string, o buildOpts) *appliance {
	tb.Helper()
	root := tb.TempDir()
	a := &appliance{
		env: e, name: name, root: root, port: o.port, noData: o.noData, mem: o.mem,
		dir: filepath.Join(root, "appliance"), config: filepath.Join(root, "config"),
	}
	if a.port == 0 {
		a.port = freePort(tb)
	}
	init := o.init
	if init == "" {
		init = e.init
	}
	args := []string{"appliance", "--name", name, "-o", a.dir, "--config", a.config,
		"--kernel", e.kernel, "--init", init, "--port", strconv.Itoa(a.port)}
	if o.noData {
		args = append(args, "--no-data")
	}
	if o.appendArgs != "" {
		args = append(args, "--append", o.appendArgs)
	}
	if o.noTor {
		args = append(args, "--no-tor")
	}
	line := "mkimage " + strings.Join(args, " ")
	tb.Log(line)
	out, err := exec.Command(e.mkimage, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s: %v\n%s", line, err, out)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("%s printed:\n%s", line, out)
		}
	})
	return a
}

func (a *appliance) dataImage() string { return filepath.Join(a.dir, "data.img") }

func (a *appliance) addr() string { return "127.0.0.1:" + strconv.Itoa(a.port) }

// forward makes the next boots forward a free loopback port to the
// node's port guest, and returns that host port.
func (a *appliance) forward(tb testing.TB, guest int) int {
	tb.Helper()
	host := freePort(tb)
	a.forwards = append(a.forwards, fmt.Sprintf("%d:%d", host, guest))
	return host
}

// client is an API client with a's client key, pinning the node key of
// its alias: for what the cloud binary does not show, such as how much
// of an upload the node has kept.
func (a *appliance) client(tb testing.TB) *api.Client {
	tb.Helper()
	cfg := api.Config{Dir: a.config}
	key, err := cfg.ClientKey()
	if err != nil {
		tb.Fatal(err)
	}
	alias, err := cfg.Alias(a.name)
	if err != nil {
		tb.Fatal(err)
	}
	node, err := api.ParseKey(alias.NodeKey)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := api.NewClient(alias.Address, key, node)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// freePort is a loopback TCP port nothing listens on right now.
func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// vm is one QEMU process, started through mkimage qemu (which execs
// QEMU, so the process is QEMU itself).
type vm struct {
	a       *appliance
	label   string
	serial  string // the guest's serial console
	monitor string // the HMP monitor's unix socket
	out     string // mkimage's and QEMU's stdout and stderr
	cmdline string // the QEMU command line, as mkimage qemu --dry-run printed it
	start   time.Time
	proc    *os.Process
	done    chan struct{} // closed once QEMU has exited
	err     error         // cmd.Wait's; read it after done is closed
}

// boot starts the appliance under QEMU, logging the exact command line so
// that a failure can be replayed. QEMU is killed when tb ends.
func (a *appliance) boot(tb testing.TB, label string) *vm {
	tb.Helper()
	v := &vm{
		a: a, label: label, done: make(chan struct{}),
		serial:  filepath.Join(a.root, label+".serial"),
		monitor: socketPath(tb, a.root, label+".mon"),
		out:     filepath.Join(a.root, label+".qemu-out"),
	}
	// --isolate: the guest reaches nothing but the forwarded ports, so
	// its tor (which would look for the real Tor network) sends nothing
	// off this machine.
	args := []string{"qemu", a.dir, "--port", strconv.Itoa(a.port), "--serial", v.serial, "--monitor", v.monitor, "--isolate"}
	if a.noData {
		args = append(args, "--no-data")
	}
	if a.disk {
		args = append(args, "--disk")
	}
	if a.mem > 0 {
		args = append(args, "--mem", strconv.Itoa(a.mem))
	}
	for _, f := range a.forwards {
		args = append(args, "--forward", f)
	}
	line, err := exec.Command(a.mkimage, append(args, "--dry-run")...).Output()
	if err != nil {
		tb.Fatalf("mkimage %s --dry-run: %v", strings.Join(args, " "), err)
	}
	v.cmdline = string(bytes.TrimSpace(line))
	tb.Logf("%s %s: %s", a.name, label, v.cmdline)
	out, err := os.Create(v.out)
	if err != nil {
		tb.Fatal(err)
	}
	defer out.Close() // QEMU has its own copy
	cmd := exec.Command(a.mkimage, args...)
	cmd.Stdout, cmd.Stderr = out, out // files, not pipes: nothing waits on them; stdin is /dev/null
	dieWithTest(cmd)
	tb.Cleanup(func() { v.logOnFailure(tb) })
	v.start = time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatalf("mkimage %s: %v", strings.Join(args, " "), err)
	}
	v.proc = cmd.Process
	go func() { v.err = cmd.Wait(); close(v.done) }()
	tb.Cleanup(v.kill)
	return v
}

// socketPath is dir/name, or a path under /tmp when that is too long for
// a unix socket (108 bytes with the NUL).
func socketPath(tb testing.TB, dir, name string) string {
	p := filepath.Join(dir, name)
	if len(p) < 100 {
		return p
	}
	d, err := os.MkdirTemp("/tmp", "aq")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(d) })
	return filepath.Join(d, name)
}

func (v *vm) kill() {
	if v.exited() {
		return
	}
	v.proc.Kill()
	select {
	case <-v.done:
	case <-time.After(10 * time.Second):
	}
}

func (v *vm) exited() bool {
	select {
	case <-v.done:
		return true
	default:
		return false
	}
}

// waitExit waits for QEMU to exit by itself and says how it ended.
func (v *vm) waitExit(tb testing.TB, within time.Duration, after string) {
	tb.Helper()
	select {
	case <-v.done:
	case <-time.After(within):
		tb.Fatalf("%s %s: QEMU still running %v after %s, want it to exit by itself", v.a.name, v.label, within, after)
	}
	if v.err != nil {
		tb.Errorf("%s %s: QEMU exited with %v after %s, want status 0", v.a.name, v.label, v.err, after)
	}
}

// logOnFailure logs the tails of the serial console and of QEMU's output.
func (v *vm) logOnFailure(tb testing.TB) {
	if !tb.Failed() {
		return
	}
	tb.Logf("%s %s: serial console %s, last lines:\n%s", v.a.name, v.label, v.serial, tail(readFile(v.serial), 60))
	tb.Logf("%s %s: mkimage qemu output %s:\n%s", v.a.name, v.label, v.out, tail(readFile(v.out), 20))
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// result is what one run of the cloud binary did.
type result struct {
	code           int
	stdout, stderr string
}

// cloud runs the real cloud binary with a's config and logs what it did.
func (a *appliance) cloud(tb testing.TB, args ...string) result {
	tb.Helper()
	return a.cloudAs(tb, a.config, args...)
}

// cloudAs runs cloud with another config directory.
func (a *appliance) cloudAs(tb testing.TB, config string, args ...string) result {
	tb.Helper()
	start := time.Now()
	r := a.runCloud(tb, config, args...)
	tb.Logf("cloud --config %s %s: exit %d after %.1f s\nstdout: %s\nstderr: %s", config, strings.Join(args, " "), r.code,
		time.Since(start).Seconds(), r.stdout, r.stderr)
	return r
}

func (a *appliance) runCloud(tb testing.TB, config string, args ...string) result {
	tb.Helper()
	r, err := runCloud(context.Background(), a.env.cloud, config, args...)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// runCloud runs the cloud binary; err is only for a cloud that could not
// run at all.
func runCloud(ctx context.Context, bin, config string, args ...string) (result, error) {
	cmd := exec.CommandContext(ctx, bin, append([]string{"--config", config}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return result{}, fmt.Errorf("cloud %s: %w", strings.Join(args, " "), err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}, nil
}

// probe is one `cloud info --json` of waitNode.
type probe struct {
	r   result
	err error
	at  time.Time // when cloud exited
}

// waitNode probes `cloud info --json` until the node answers with a node
// for which ok holds. It returns that node and how long after QEMU
// started the answer came; it fails tb if QEMU exits or the deadline
// passes.
//
// A probe starts every probeEvery without waiting for the ones in flight:
// under QEMU's user-mode network, a connection made before the guest's
// network is up (and at times the first one after) waits for slirp to
// retransmit its SYN, about 6 s later. One probe at a time would measure
// slirp's timer rather than the node.
func (v *vm) waitNode(tb testing.TB, what string, ok func(api.Node) bool) (api.Node, time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // kills the probes still in flight
	answers := make(chan probe, maxProbes)
	inflight := 0
	launch := func() {
		inflight++
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := runCloud(ctx, v.a.env.cloud, v.a.config, "info", v.a.name, "--json", "--timeout", probeTimeout)
			answers <- probe{r: r, err: err, at: time.Now()}
		}()
	}
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	deadline := time.After(firstAnswer)
	last := "(no answer yet)"
	launch()
	for {
		select {
		case p := <-answers:
			inflight--
			if p.err != nil {
				tb.Fatal(p.err)
			}
			if p.r.code != 0 {
				last = strings.TrimSpace(p.r.stderr)
				continue
			}
			var n api.Node
			if err := json.Unmarshal([]byte(p.r.stdout), &n); err != nil {
				tb.Fatalf("cloud info %s --json = %q: not an api.Node: %v", v.a.name, p.r.stdout, err)
			}
			if ok(n) {
				return n, p.at.Sub(v.start)
			}
			last = "answered " + strings.Join(strings.Fields(p.r.stdout), " ")
		case <-tick.C:
			if inflight < maxProbes {
				launch()
			}
		case <-v.done:
			tb.Fatalf("%s %s: waiting for %s, QEMU exited (%v); cloud info said: %s", v.a.name, v.label, what, v.err, last)
		case <-deadline:
			tb.Fatalf("%s %s: no %s within %v; cloud info said: %s", v.a.name, v.label, what, firstAnswer, last)
		}
	}
}

func anyNode(api.Node) bool { return true }

// waitConsole waits until the serial console holds marker at least n
// times (a reboot or a reset keeps appending to the same file); it fails
// tb if QEMU exits or the deadline passes.
func (v *vm) waitConsole(tb testing.TB, marker string, n int) {
	tb.Helper()
	deadline := time.Now().Add(firstAnswer)
	for {
		if strings.Count(readFile(v.serial), marker) >= n {
			return
		}
		if v.exited() {
			tb.Fatalf("%s %s: waiting for %q (%d times) on the console, QEMU exited (%v)", v.a.name, v.label, marker, n, v.err)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s %s: %q is on the console %d times after %v, want %d", v.a.name, v.label, marker,
				strings.Count(readFile(v.serial), marker), firstAnswer, n)
		}
		time.Sleep(pollEvery)
	}
}

// hmp sends one command to QEMU's human monitor and waits for the next
// prompt, so the command was read before the connection closes.
func (v *vm) hmp(tb testing.TB, command string) {
	tb.Helper()
	c, err := net.DialTimeout("unix", v.monitor, 5*time.Second)
	if err != nil {
		tb.Fatalf("QEMU monitor %s: %v", v.monitor, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := readPrompt(c); err != nil {
		tb.Fatalf("QEMU monitor %s: waiting for the prompt: %v", v.monitor, err)
	}
	if _, err := fmt.Fprintf(c, "%s\n", command); err != nil {
		tb.Fatalf("QEMU monitor %s: %s: %v", v.monitor, command, err)
	}
	if err := readPrompt(c); err != nil {
		tb.Fatalf("QEMU monitor %s: after %s: %v", v.monitor, command, err)
	}
	tb.Logf("%s %s: sent %s on the QEMU monitor", v.a.name, v.label, command)
}

func readPrompt(c net.Conn) error {
	var got []byte
	buf := make([]byte, 512)
	for !bytes.Contains(got, []byte("(qemu) ")) {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return fmt.Errorf("%w (read %q)", err, got)
		}
	}
	return nil
}

// checkClean fails tb unless dumpe2fs -h says the image's journal needs
// no recovery, its state is clean and it has no orphan inodes: what an
// orderly unmount leaves.
func checkClean(tb testing.TB, img, after string) {
	tb.Helper()
	out, err := exec.Command("dumpe2fs", "-h", img).Output()
	if err != nil {
		tb.Fatalf("dumpe2fs -h %s: %v (e2fsprogs is needed; mkimage needs it too)", img, err)
	}
	fields := dumpe2fsFields(string(out))
	if f := fields["Filesystem features"]; f == "" || strings.Contains(f, "needs_recovery") {
		tb.Errorf("dumpe2fs -h data.img after %s: features = %q, want no needs_recovery", after, f)
	}
	if s := fields["Filesystem state"]; s != "clean" {
		tb.Errorf("dumpe2fs -h data.img after %s: state = %q, want clean", after, s)
	}
	if o, ok := fields["First orphan inode"]; ok {
		tb.Errorf("dumpe2fs -h data.img after %s: first orphan inode = %s, want no orphan list", after, o)
	}
}

// dumpe2fsFields reads "Name:   value" lines.
func dumpe2fsFields(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}
