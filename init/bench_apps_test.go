package main

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"allium/api"
	"allium/internal/testbin"
	"allium/internal/testkit"
)

// Issue 3's benchmarks of running apps, on the real init as PID 1 of an
// OS container (pid1_test.go's harness), root tier. Each prints a table
// of medians and the ratio against its peer measured in the same run.
//
// The node's data root, and the peer's directories, are on a fresh
// journaled ext4 in a loop-mounted file, as on a node's data disk:
// this VM's root filesystem has no journal, and there creating a file
// scans the inodes deleted in the last ~30-60 s (ext4's
// recently_deleted), which makes creation 10-20x slower after any
// removal, anyone's.

// benchNode is a started node whose data root is on disk/allium.
type benchNode struct {
	*containerNode
	cloud  string // the cloud binary
	config string // cloud's configuration directory: the client key
}

func startBenchNode(b *testing.B, disk string) *benchNode {
	bin := testbin.Path(b, "init")
	dir, port, client, node := newChroot(b, bin)
	data, src := filepath.Join(dir, "var/lib/allium"), filepath.Join(disk, "allium")
	for _, d := range []string{data, src} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	testkit.Run(b, "mount", "--bind", src, data)
	b.Cleanup(func() { testkit.Unmount(b, data) }) // after the harness has killed init
	c := startContainerNode(b, dir, port, client, node)
	b.Cleanup(func() { shutdownNode(c) }) // before
	c.waitUp()
	c.waitLog(`api: listening" network=tcp`)

	n := &benchNode{containerNode: c, cloud: testbin.Path(b, "cloud"), config: filepath.Join(b.TempDir(), "cloud")}
	pem, err := api.MarshalPrivateKey(client)
	if err == nil {
		err = api.WriteFileAtomic(api.Config{Dir: n.config}.KeyPath(), pem, 0o600)
	}
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// shutdownNode powers init off in order (it stops the containers) and
// leaves its exit status for the harness's cleanup.
func shutdownNode(c *containerNode) {
	syscall.Kill(c.pid, syscall.SIGTERM)
	select {
	case err := <-c.done:
		c.done <- err
	case <-time.After(30 * time.Second):
		c.t.Errorf("init did not exit within 30 s of SIGTERM")
	}
}

// cloudStart runs `cloud start 127.0.0.1:PORT FILE --name NAME` and
// returns how long it took.
func (n *benchNode) cloudStart(b *testing.B, file, name string) time.Duration {
	cmd := exec.Command(n.cloud, "--config", n.config, "start", fmt.Sprintf("127.0.0.1:%d", n.port), file,
		"--node-key", api.FormatKey(n.node), "--name", name)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("%s: %v\n%s\ninit's console:\n%s", strings.Join(cmd.Args, " "), err, out, n.logs)
	}
	return d
}

// busyboxTree writes a rootfs of the host's static busybox with its
// applets' links, plus extra files of about extraBytes (deterministic
// text in /www/docs), and returns it.
func busyboxTree(b *testing.B, extraBytes int) string {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		b.Skip("busybox not found (apt-get install busybox-static)")
	}
	if !isStatic(b, bb) {
		b.Skipf("%s is dynamically linked; the image needs a static busybox (apt-get install busybox-static)", bb)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		b.Fatal(err)
	}
	root := filepath.Join(b.TempDir(), "rootfs")
	write := func(name string, data []byte, mode os.FileMode) {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
			err = os.WriteFile(p, data, mode)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	write("bin/busybox", data, 0o755)
	for _, applet := range []string{"sh", "httpd", "false", "true", "sleep"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			b.Fatal(err)
		}
	}
	write("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"), 0o644)
	write("etc/group", []byte("root:x:0:\nnobody:x:65534:\n"), 0o644)
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; extraBytes > 0; i++ {
		n := min(extraBytes, 4<<10+r.IntN(20<<10))
		write(fmt.Sprintf("www/docs/d%02d/page%03d.html", i%16, i), benchText(r, n), 0o644)
		extraBytes -= n
	}
	write("www/index.html", []byte("<h1>allium bench</h1>\n"), 0o644)
	return root
}

// isStatic reports whether an ELF file asks for no dynamic loader.
func isStatic(b *testing.B, path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// benchText is n bytes of word salad: text that compresses about 3:1.
func benchText(r *rand.Rand, n int) []byte {
	var sb strings.Builder
	for sb.Len() < n {
		w := make([]byte, 2+r.IntN(8))
		for i := range w {
			w[i] = byte('a' + r.IntN(r.IntN(26)+1))
		}
		sb.Write(w)
		sb.WriteByte(" \n"[r.IntN(10)/9])
	}
	return []byte(sb.String()[:n])
}

// benchPack runs `mkimage pack tree -o out` with more flags.
func benchPack(b *testing.B, mkimage, tree, out string, flags ...string) {
	cmd := exec.Command(mkimage, append([]string{"pack", tree, "-o", out}, flags...)...)
	if o, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, o)
	}
}

// procCPU is a process's CPU time from /proc/PID/stat: its own (utime +
// stime) and that of the children it has reaped (cutime + cstime).
func procCPU(b *testing.B, pid int) (self, children time.Duration) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command's closing parenthesis start with the
	// state (field 3); utime is field 14.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	tick := func(i int) time.Duration {
		n, _ := strconv.ParseInt(f[i-3], 10, 64)
		return time.Duration(n) * time.Second / userHZ
	}
	return tick(14) + tick(15), tick(16) + tick(17)
}

// userHZ is the unit of /proc/PID/stat's times: 100 on Linux (USER_HZ).
const userHZ = 100

func benchMedian(d []time.Duration) time.Duration {
	return benchPercentile(d, 50)
}

// benchPercentile is the p-th percentile of d, nearest rank.
func benchPercentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	if p == 50 && len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[min(len(s)-1, (p*len(s)+99)/100-1)]
}

func benchEnvInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a whole number, 1 or more", name, s)
	}
	return n
}

func benchSeconds(ds []time.Duration) string {
	f := make([]string, len(ds))
	for i, d := range ds {
		f[i] = fmt.Sprintf("%.3f", d.Seconds())
	}
	return strings.Join(f, " ")
}

// crun runs crun, inside a mount namespace without the cgroup2 mount
// on a hybrid cgroup host (crun 1.8 refuses hybrid mode).
type crun struct {
	path string
	argv []string // the command before crun's own arguments
}

func newCrun(b *testing.B) crun {
	path, err := exec.LookPath("crun")
	if err != nil {
		b.Skip("crun not found, and it is the peer (apt-get install -y crun)")
	}
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup/unified", &st) != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		return crun{path: path, argv: []string{path}}
	}
	// A holder process keeps a mount namespace where cgroup2 is gone;
	// nsenter runs each crun in it.
	holder := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		"umount /sys/fs/cgroup/unified && echo ready && exec sleep 1000000")
	holder.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := holder.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		b.Fatalf("unshare: could not make a mount namespace without cgroup2 for crun")
	}
	ns := fmt.Sprintf("--mount=/proc/%d/ns/mnt", holder.Process.Pid)
	return crun{path: path, argv: []string{"nsenter", ns, "--", path}}
}

func (c crun) command(args ...string) *exec.Cmd {
	return exec.Command(c.argv[0], append(slices.Clone(c.argv[1:]), args...)...)
}

// config is `crun spec`'s config.json with args as the process, no
// terminal, and the bundle's rootfs/ as the root.
func (c crun) config(b *testing.B, args []string) []byte {
	spec := crunSpec(b, c.path) // no cgroups: no need for nsenter
	proc := spec["process"].(map[string]any)
	proc["args"], proc["terminal"] = args, false
	spec["root"].(map[string]any)["path"] = "rootfs"
	out, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// crunSpec is `crun spec`'s config.json, decoded.
func crunSpec(b *testing.B, path string) map[string]any {
	dir := b.TempDir()
	cmd := exec.Command(path, "spec")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("crun spec: %v: %s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		b.Fatal(err)
	}
	var spec map[string]any
	if err := json.Unmarshal(raw, &spec); err != nil {
		b.Fatalf("crun spec: %v", err)
	}
	return spec
}

// run runs crun with args, its output to log (a file, so that a
// detached container's inherited stdio does not keep Wait waiting).
func (c crun) run(b *testing.B, log *os.File, args ...string) time.Duration {
	cmd := c.command(args...)
	cmd.Stdout, cmd.Stderr = log, log
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		out, _ := os.ReadFile(log.Name())
		b.Fatalf("%s: %v; its log:\n%s", strings.Join(cmd.Args, " "), err, out[max(0, len(out)-2000):])
	}
	return d
}
