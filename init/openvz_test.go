package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"allium/api"
	"allium/internal/testbin"
)

// vzctlArgv is how OpenVZ's vzctl execs a container's init: a blank
// word after -z leaves room for the process title.
var vzctlArgv = []string{"/sbin/init", "-z", "      "}

// TestPID1OpenVZStop boots init as vzctl does (`init -z "      "`,
// container=openvz, /sbin/init a link to it, with an argument it does
// not know) and stops it as vzctl stop and restart do, by running
// halt, init 0 and reboot inside the container: each shuts it down in
// order.
func TestPID1OpenVZStop(t *testing.T) {
	requireRoot(t)
	bin := testbin.Path(t, "init")
	dir, port, client, node := newChroot(t, bin)
	os.MkdirAll(filepath.Join(dir, "sbin"), 0o755)
	for _, name := range []string{"init", "halt", "reboot", "poweroff", "shutdown", "telinit"} {
		if err := os.Symlink("/init", filepath.Join(dir, "sbin", name)); err != nil {
			t.Fatal(err)
		}
	}
	for i, tc := range []struct {
		cmd     []string
		markers []string
	}{
		{[]string{"/sbin/halt"}, []string{"signal: powering off", "shutdown: stopping processes", "shutdown: closing state", "shutdown: unmounting", "shutdown: power off"}},
		{[]string{"/sbin/init", "0"}, []string{"signal: powering off", "shutdown: stopping processes", "shutdown: closing state", "shutdown: unmounting", "shutdown: power off"}},
		{[]string{"/sbin/reboot"}, []string{"signal: rebooting", "shutdown: stopping processes", "shutdown: closing state", "shutdown: unmounting", "shutdown: reboot"}},
	} {
		argv := append(vzctlArgv, "--bogus")
		c := startContainerNodeAs(t, dir, port, client, node, nil, "openvz", argv)
		n := c.waitUp()
		if n.Environment != api.EnvContainer || n.BootCount != uint64(i+1) {
			t.Errorf("GET /v1/node of init started as vzctl does = %+v, want a container at boot %d", n, i+1)
		}
		c.waitLog(`environment kind=container sign="container=openvz"`)
		c.waitLog(`arguments: ignored" args=\[--bogus\]`)

		// A usage error inside the container leaves the node running.
		if out, err := c.enter("/sbin/shutdown", "-h", "+5").CombinedOutput(); exitCode(err) != 2 {
			t.Errorf("shutdown -h +5 in the container = %v (%s), want exit 2", err, out)
		}
		if _, err := c.unix().Node(context.Background()); err != nil {
			t.Fatalf("init stopped answering after a bad shutdown: %v", err)
		}

		if out, err := c.enter(tc.cmd...).CombinedOutput(); err != nil {
			t.Fatalf("%q in the container: %v\n%s", tc.cmd, err, out)
		}
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("init did not exit within 30 s of %q", tc.cmd)
		}
		checkOrder(t, c.logs.String(), tc.markers...)
	}
}

// enter is a command run inside the node's container: its pid and
// mount namespaces, and its root, as vzctl exec runs one.
func (c *containerNode) enter(argv ...string) *exec.Cmd {
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(c.pid), "-p", "-m", "-r", "--"}, argv...)...)
	cmd.Env = []string{"PATH=/sbin:/bin"}
	return cmd
}

func exitCode(err error) int {
	var e *exec.ExitError
	if errors.As(err, &e) {
		return e.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
