package main

import (
	"fmt"
	"strings"
)

// The power commands init answers to when it is not PID 1: the names an
// OS container's manager and an operator run to stop the machine. The
// binary is installed under each name (a link to /sbin/init), or called
// as init with a runlevel. OpenVZ's vzctl stops a container by running
// `halt` inside it (then `init 0` if there is no halt), and restarts it
// by running `reboot`; LXC sends PID 1 SIGPWR (lxc.signal.halt) or
// SIGINT (lxc.signal.reboot), which handleSignals already takes.
//
//	halt, poweroff [-p] [-f] [-n] [-d] [-i] [--no-wall]   power off
//	reboot [-f] [-n] [-d] [-i] [--no-wall]                reboot
//	  (-p/--poweroff, --reboot, --halt pick the action; -w/--wtmp-only does nothing)
//	shutdown [-h|-H|-P|-r|-k|-c] [-f] [-F] [-n] [-t SEC] [now|+0] [message]
//	telinit 0|6|q|u, init 0|6|q|u|poweroff|reboot|halt
//
// The node has no halted-but-on state and no other runlevels: halt
// powers off, as the kernel's orderly_poweroff does. PID 1 runs the
// same shutdown (signals_linux.go) whatever the command.

// powerAction is what a power command asks of PID 1.
type powerAction int

const (
	powerNothing   powerAction = iota // halt -w, shutdown -k, telinit q: done, nothing to ask
	powerActOff                       // SIGTERM to PID 1
	powerActReboot                    // SIGINT to PID 1
)

func (a powerAction) String() string {
	switch a {
	case powerActOff:
		return "power off"
	case powerActReboot:
		return "reboot"
	}
	return "nothing"
}

// usageError is a power command's bad arguments: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// parsePower reads a power command: name is how the binary was called
// (argv[0]'s base name), args the words after it. ok is false when this
// is no power command (init with no argument, or with a helper's); err
// is a power command with arguments it cannot honour.
func parsePower(name string, args []string) (act powerAction, ok bool, err error) {
	switch name {
	case "halt", "poweroff":
		act, err = haltFlags(name, powerActOff, args)
		return act, true, err
	case "reboot":
		act, err = haltFlags(name, powerActReboot, args)
		return act, true, err
	case "shutdown":
		act, err = shutdownArgs(args)
		return act, true, err
	case "telinit":
		if len(args) != 1 {
			return powerNothing, true, usagef("telinit: want one runlevel: 0 (power off) or 6 (reboot)")
		}
		act, err = runlevel("telinit", args[0])
		return act, true, err
	}
	if len(args) == 0 {
		return powerNothing, false, nil
	}
	switch args[0] {
	case "poweroff", "halt", "reboot":
		// init poweroff: as running it as poweroff, with its flags.
		return parsePower(args[0], args[1:])
	}
	if len(args[0]) != 1 {
		return powerNothing, false, nil // not a runlevel: init's own usage
	}
	if len(args) > 1 {
		return powerNothing, true, usagef("init %s: unexpected arguments %q", args[0], args[1:])
	}
	act, err = runlevel("init", args[0])
	return act, true, err
}

// runlevel maps a SysV runlevel: 0 powers off, 6 reboots, q and u (reload
// the configuration, re-execute init) have nothing to do here.
func runlevel(cmd, level string) (powerAction, error) {
	switch level {
	case "0":
		return powerActOff, nil
	case "6":
		return powerActReboot, nil
	case "q", "Q", "u", "U":
		return powerNothing, nil
	}
	return powerNothing, usagef("%s %s: an Allium node has no runlevel %s; use 0 (power off) or 6 (reboot)", cmd, level, level)
}

// haltFlags reads the options of halt, poweroff and reboot (systemd's
// and sysvinit's): the action may change, the rest are accepted and
// mean nothing on a node (it always syncs, and it keeps no wtmp).
func haltFlags(name string, act powerAction, args []string) (powerAction, error) {
	for _, a := range args {
		switch a {
		case "-p", "--poweroff":
			act = powerActOff
		case "--halt", "-H":
			act = powerActOff
		case "--reboot":
			act = powerActReboot
		case "-w", "--wtmp-only":
			return powerNothing, nil
		case "-f", "--force", "-ff", "-n", "--no-sync", "-d", "--no-wtmp", "-i", "-h", "--no-wall", "-q":
		default:
			return powerNothing, usagef("%s: unknown option %q (try %s with no options)", name, a, name)
		}
	}
	return act, nil
}

// shutdownArgs reads shutdown's options and time. Without -h, -P or -r
// it powers off, as systemd's shutdown does. Only an immediate shutdown
// is possible: the node keeps no schedule.
func shutdownArgs(args []string) (powerAction, error) {
	act := powerActOff
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			rest = append(rest, args[i+1:]...)
			i = len(args)
		case a == "-t":
			i++ // sysvinit's seconds between SIGTERM and SIGKILL: the node has its own
		case strings.HasPrefix(a, "--"):
			switch a {
			case "--poweroff", "--halt":
				act = powerActOff
			case "--reboot":
				act = powerActReboot
			case "--cancel":
				return powerNothing, nil
			case "--no-wall":
			default:
				return powerNothing, usagef("shutdown: unknown option %q", a)
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for _, c := range a[1:] {
				switch c {
				case 'h', 'H', 'P':
					act = powerActOff
				case 'r':
					act = powerActReboot
				case 'k', 'c': // only warn; cancel a schedule there is not
					return powerNothing, nil
				case 'f', 'F', 'n', 'a', 'q':
				default:
					return powerNothing, usagef("shutdown: unknown option -%c", c)
				}
			}
		default:
			rest = append(rest, a)
		}
	}
	if len(rest) > 0 && rest[0] != "now" && rest[0] != "+0" && rest[0] != "0" {
		return powerNothing, usagef("shutdown: time %q: an Allium node shuts down only now (shutdown -h now, or -r now)", rest[0])
	}
	return act, nil // any words after the time are a wall message, for nobody
}

// ignoredArgs are PID 1's arguments that mean nothing to it: all but
// OpenVZ's "-z" and the blank word vzctl passes after it (room for
// the process title). The kernel passes init the words of its command
// line it does not know.
func ignoredArgs(args []string) []string {
	var out []string
	for _, a := range args {
		if a != "-z" && strings.TrimSpace(a) != "" {
			out = append(out, a)
		}
	}
	return out
}
