package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"

	"allium/supervisor/idmap"

	"allium/imagestore"
	"allium/init/netup"
	"allium/internal/safe"
	"allium/supervisor"
	"allium/supervisor/isolation"

	"golang.org/x/sys/unix"
)

// bootMarker is printed once the API is being served; tests and
// operators watching a console wait for it.
const bootMarker = "ALLIUM_BOOT_OK"

// helpers are the roles PID 1 starts the binary in, named by its first
// argument.
var helpers = []string{"unpack", "shim", "probe", "userns", "version"}

// run dispatches on how the binary was invoked. As PID 1 it never
// returns, whatever its arguments: an OS container's manager passes its
// own (OpenVZ's `init -z "      "`) and the kernel the words of its
// command line it does not know.
func run(args []string, pid int, stderr io.Writer) int {
	role := filepath.Base(args[0])
	if len(args) > 1 && slices.Contains(helpers, args[1]) {
		role = args[1]
	}
	switch {
	case role == "unpack" && pid != 1:
		// A helper of PID 1: unpacks one upload (imagestore.HelperMain).
		return imagestore.HelperMain(args[2:], os.Stdin, os.Stdout, os.Stderr)
	case role == "shim" && (pid != 1 || os.Getenv(supervisor.ShimSpecEnv) != ""):
		// A container's first process: sets it up and execs the workload.
		// At the namespaces rung it is PID 1 of the container's pid
		// namespace, and says so with its spec in the environment.
		return supervisor.ShimMain(args[2:])
	case role == "probe" && (pid != 1 || os.Getenv(isolation.ProbeEnv) == "1"):
		// A child of the isolation probe, in new namespaces.
		return isolation.ProbeMain(args[2:], os.Stdout)
	case role == "userns" && (pid != 1 || os.Getenv(idmap.HoldEnv) == "1"):
		// Holds a user namespace open while PID 1 makes an idmapped mount.
		return idmap.HoldMain(os.Stdin)
	case role == "version" && pid != 1:
		// What this build is: asked of a new init before the node
		// trusts it (update_linux.go), and by operators.
		return versionMain(args[2:], os.Stdout, stderr)
	case pid == 1:
		pid1(args[1:])
	}
	if name := filepath.Base(args[0]); name != "init" || len(args) > 1 {
		// Between install.sh's takeover and the switch, PID 1 is still
		// the old init: the old power commands stop it.
		delegatePower(args[0], name, args[1:])
	}
	act, ok, err := parsePower(filepath.Base(args[0]), args[1:])
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "%v\n", err)
		return 2
	case !ok:
		fmt.Fprint(stderr, usage)
		return 2
	case act == powerActOff:
		return signalInit(unix.SIGTERM, stderr)
	case act == powerActReboot:
		return signalInit(unix.SIGINT, stderr)
	}
	return 0
}

const usage = `usage: init is /sbin/init of an Allium node and runs as PID 1.
  init poweroff, init 0   ask PID 1 to power off (as do halt, poweroff, shutdown -h now, telinit 0)
  init reboot, init 6     ask PID 1 to reboot (as do reboot, shutdown -r now, telinit 6)
  init version [--json]   what this build is: version, state schema, architecture, handover
`

// signalInit asks PID 1 to shut down, as the kernel's orderly_poweroff
// and an operator's `poweroff` expect. PID 1's real uid is its own
// (guard_linux.go): only a caller with CAP_KILL, such as root of the
// node or of the OS container it is PID 1 of, may.
func signalInit(sig unix.Signal, stderr io.Writer) int {
	// PID 1's shutdown sends SIGTERM to every process, this one too if
	// it has not exited yet: vzctl's halt would die of it, not exit 0.
	signal.Ignore(unix.SIGTERM)
	if err := unix.Kill(1, sig); err != nil {
		fmt.Fprintf(stderr, "init: signal PID 1: %v\n", err)
		if errors.Is(err, unix.EPERM) {
			fmt.Fprintf(stderr, "init: only root (CAP_KILL) may stop the node; run it as root, or `cloud poweroff NODE` from a client\n")
		}
		return 1
	}
	return 0
}

// pid1 is the life of PID 1: catch signals, boot, serve, and wait for a
// shutdown request. Nothing here returns or exits except shutdown
// itself.
func pid1(args []string) {
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs) // first: an unhandled signal kills a Go PID 1
	log, console := newConsoleLogger()
	n := newNode(log, sysKernel{}, "/")
	n.console = console
	took := n.takeHandover()               // before the first reap: it expects the handed-over pids
	safe.Run(log, "guard", n.guardSignals) // before any child: they get root back from the reaper
	safe.Go(log, "signals", func() { n.handleSignals(sigs) })
	if took != nil {
		n.adopt(took) // an update in place (reexec_linux.go)
	} else {
		n.bootAll(args, log)
	}
	log.Info(bootMarker, "name", n.cfg.Name, "environment", n.environment(), "persistent", n.data.Persistent, "boot", n.bootCount)
	for {
		cmd := <-n.power
		safe.Run(log, "shutdown", func() { n.shutdown(cmd) })
	}
}

// bootAll is a boot's sequence, from the boot's first step to the
// restore of the containers.
func (n *node) bootAll(args []string, log *slog.Logger) {
	safe.Run(log, "boot", func() { n.boot(args, upNetwork(log)) })
	safe.Run(log, "cgroups", n.earlyCgroups) // before tor: it is born in init's cgroup
	safe.Run(log, "apps", n.startApps)
	safe.Run(log, "api", n.serveAPI)
	safe.Run(log, "tor", n.startTor)
	safe.Go(log, "restore", n.restoreApps)
	safe.Go(log, "late boot", n.lateBoot)
}

func upNetwork(log *slog.Logger) netUpFunc {
	return func(ctx context.Context, cfg netup.Config, resolvConf string) (netup.State, error) {
		return netup.Up(ctx, cfg, resolvConf, log)
	}
}
