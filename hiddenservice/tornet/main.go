package tornet

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// RunTests runs a test package's tests, with one network for all of
// them when ALLIUM_TOR_TESTS=1 (handed to use before the tests run; use
// is not called otherwise). Every tor the test binary starts, from the
// network's on, is watched: a socket off the loopback fails the run.
// $ALLIUM_TORNET_DIR keeps the network's directory, with info-level
// logs, for a post-mortem. It returns the exit code:
//
//	func TestMain(m *testing.M) {
//		os.Exit(tornet.RunTests(m, func(n *tornet.Network) { network = n }))
//	}
func RunTests(m *testing.M, use func(*Network)) int {
	if os.Getenv("ALLIUM_TOR_TESTS") != "1" {
		return m.Run()
	}
	mon := Watch(300*time.Millisecond, func() []int { return DescendantPIDs("tor") })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	keep := os.Getenv("ALLIUM_TORNET_DIR")
	n, err := Start(ctx, Options{Dir: keep, DebugLog: keep != "", Log: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		mon.Stop()
		return 1
	}
	fmt.Fprintf(os.Stderr, "tornet: network up in %s\n", time.Since(start).Round(time.Millisecond))
	use(n)
	code := m.Run()
	n.Close()
	checked, bad := mon.Stop()
	fmt.Fprintf(os.Stderr, "tornet: %d socket observations of tor processes, %d off the loopback\n", checked, len(bad))
	for _, s := range bad {
		fmt.Fprintln(os.Stderr, "tornet: socket off the loopback:", s)
		code = 1
	}
	return code
}

// StartReaped stands in for PID 1's reaper in tests (a
// hiddenservice.Options.Start): it starts cmd, to die with the test,
// and reports its exit status once.
func StartReaped(cmd *exec.Cmd) (<-chan unix.WaitStatus, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ch := make(chan unix.WaitStatus, 1)
	go func() {
		cmd.Wait()
		ch <- unix.WaitStatus(cmd.ProcessState.Sys().(syscall.WaitStatus))
	}()
	return ch, nil
}
