package main

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Power actions, as reboot(2) commands.
const (
	powerOff    = unix.LINUX_REBOOT_CMD_POWER_OFF
	powerReboot = unix.LINUX_REBOOT_CMD_RESTART
)

// handleSignals catches every signal. A Go PID 1 that leaves a signal
// unhandled dies of it (the runtime re-raises it and exits), and the
// kernel panics; so everything is caught, and most things are logged and
// ignored.
//
//	SIGCHLD          reap
//	SIGTERM, SIGPWR  power off (SIGPWR: a UPS or a hypervisor)
//	SIGINT           reboot (the kernel sends it for ctrl-alt-del)
//	anything else    logged, ignored
func (n *node) handleSignals(ch <-chan os.Signal) {
	// A timer reaps too, in case a SIGCHLD was lost to a full channel.
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case sig := <-ch:
			n.onSignal(sig)
		case <-tick.C:
			n.reaper.reap()
		}
	}
}

func (n *node) onSignal(sig os.Signal) {
	switch sig {
	case unix.SIGCHLD:
		n.reaper.reap()
	case unix.SIGTERM, unix.SIGPWR:
		n.log.Info("signal: powering off", "signal", sig)
		n.requestPower(powerOff, "signal "+unix.SignalName(sig.(unix.Signal)))
	case unix.SIGINT:
		n.log.Info("signal: rebooting", "signal", sig)
		n.requestPower(powerReboot, "signal SIGINT")
	case unix.SIGURG:
		// the Go runtime's own preemption signal
	default:
		n.log.Info("signal: ignored", "signal", sig)
	}
}
