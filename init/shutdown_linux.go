package main

import (
	"context"
	"errors"
	"os"
	"slices"
	"time"

	"allium/internal/mountinfo"

	"golang.org/x/sys/unix"
)

// Grace periods of the shutdown.
var (
	apiGrace       = 2 * time.Second  // requests in flight (the reboot request itself)
	containerGrace = 30 * time.Second // containers, each with its own stop timeout, in parallel
	termGrace      = 10 * time.Second // processes, after SIGTERM
	killGrace      = 3 * time.Second  // processes, after SIGKILL
)

// requestPower asks the main loop to shut down with cmd; by says who
// asked (apps.ShutdownOperator for the API, else the signal or the
// power button), which the next boot's boot-loop protection reads. The
// first request wins and later ones are dropped.
func (n *node) requestPower(cmd int, by string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.powerBy != "" {
		return
	}
	n.powerBy = by
	n.power <- cmd // buffered for one: the first request never blocks
}

// shutdownBy is who asked for the shutdown.
func (n *node) shutdownBy() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.powerBy == "" {
		return "unknown"
	}
	return n.powerBy
}

// shutdown stops everything in order and calls reboot(2):
//
//	API listeners -> containers -> tor -> processes (SIGTERM, grace, SIGKILL) -> state.db
//	-> sync -> unmount (data first, then the early mounts in reverse)
//	-> reboot(cmd)
func (n *node) shutdown(cmd int) {
	n.log.Info("shutdown: begin", "action", actionName(cmd))
	n.stopProbe()
	if n.api != nil {
		ctx, cancel := context.WithTimeout(context.Background(), apiGrace)
		n.api.Shutdown(ctx)
		cancel()
	}
	if n.apps != nil {
		n.log.Info("shutdown: stopping containers")
		ctx, cancel := context.WithTimeout(context.Background(), containerGrace)
		if err := n.apps.Stop(ctx, 5*time.Second, n.shutdownBy()); err != nil {
			n.log.Warn("shutdown: stopping containers", "err", err)
		}
		cancel()
	}
	n.stopTor()
	n.log.Info("shutdown: stopping processes")
	n.stopProcesses()
	if n.db != nil {
		n.log.Info("shutdown: closing state")
		if err := n.db.Close(); err != nil {
			n.log.Error("shutdown: closing state", "err", err)
		}
	}
	n.k.Sync()
	n.log.Info("shutdown: unmounting")
	if n.data.Mounted != "" {
		// Container roots and volumes are mounted below the data root.
		// unmountAll goes from the end: the latest first, the data root last.
		children := slices.DeleteFunc(mountinfo.Under(n.data.Mounted), func(m string) bool { return m == n.data.Mounted })
		unmountAll(n.k, n.log, append([]string{n.data.Mounted}, reverse(children)...), false)
	}
	unmountAll(n.k, n.log, n.mounts, true)
	n.k.Sync()
	n.log.Info("shutdown: " + actionName(cmd))
	n.halt(cmd)
}

// stopProcesses signals every process but PID 1 itself, SIGTERM first.
func (n *node) stopProcesses() {
	if !n.signalAll(unix.SIGTERM, termGrace) {
		n.log.Warn("shutdown: processes outlived SIGTERM; sending SIGKILL")
		n.signalAll(unix.SIGKILL, killGrace)
	}
}

// signalAll sends sig to every process and waits up to grace for them to
// be gone (reaped by the reaper). It reports whether they went.
func (n *node) signalAll(sig unix.Signal, grace time.Duration) bool {
	if err := n.k.Kill(-1, sig); errors.Is(err, unix.ESRCH) {
		return true
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if n.k.Processes() == 0 {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return n.k.Processes() == 0
}

// halt calls reboot(2). In an OS container that may be refused, and
// there exiting PID 1 is how a container stops; in a VM, exiting would
// panic the kernel, so PID 1 waits for the operator instead.
func (n *node) halt(cmd int) {
	err := n.k.Reboot(cmd)
	if n.afterReboot != nil { // tests
		n.afterReboot(err)
		return
	}
	if n.container {
		os.Exit(0)
	}
	n.log.Error("shutdown: reboot(2) failed; halting here", "err", err)
	select {}
}

func actionName(cmd int) string {
	if cmd == powerReboot {
		return "reboot"
	}
	return "power off"
}

// reverse returns s reversed: mountinfo.Under lists deepest first, and
// unmountAll unmounts from the end.
func reverse(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}
