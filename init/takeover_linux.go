package main

// An OS container taken over by install.sh (mkimage/install.sh,
// do_takeover) keeps what it replaced beside it, as NAME.allium-orig,
// and records in /etc/allium/takeover what it kept and what it added:
//
//	kept /sbin/init          /sbin/init.allium-orig is the old init
//	kept /sbin/halt          ... and the old power commands
//	kept /etc/passwd         where allium-tor was added
//	added /sbin/init.allium  init itself
//	added /etc/allium        node.json and the keys
//	added /sbin/telinit      a power command the container did not have
//
// uninstallTakeover puts it back; the node then reboots, which ends PID
// 1, and the container's manager starts the old init again.
//
// Between the install and the switch (or after an uninstall, until the
// reboot) /sbin/halt and the others are Allium's while PID 1 is not:
// delegatePower runs the kept originals then, so the old system's own
// shutdown (sysvinit's rc 6 ends in `reboot -d -f -i`) works as before.

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"allium/internal/durable"
	"allium/rootfs"

	"golang.org/x/sys/unix"
)

const (
	// takeoverRecord lists what install.sh kept and added.
	takeoverRecord = rootfs.ConfigDir + "/takeover"
	// origSuffix names what install.sh kept.
	origSuffix = ".allium-orig"
)

// takeoverKept are the files install.sh may keep, for a record that is
// lost: each is restored where its NAME.allium-orig is there.
var takeoverKept = []string{"/sbin/init", "/sbin/halt", "/sbin/reboot", "/sbin/poweroff", "/sbin/shutdown",
	"/sbin/telinit", "/etc/passwd", "/etc/group"}

// uninstallTakeover undoes install.sh's takeover of the container whose
// root is root: every kept NAME.allium-orig renamed back over NAME (one
// rename each, so NAME is never missing; /sbin/init first, so that the
// next start is the old system's even if a later step fails), then
// what it added removed, /etc/allium last. /var/lib/allium, the node's
// data, stays. Each step is logged with say; the error joins every
// step that failed, and the others are done all the same.
func uninstallTakeover(root string) error {
	return undoTakeover(root, func(msg string) { fmt.Fprintf(os.Stderr, "uninstall: %s\n", msg) })
}

func undoTakeover(root string, say func(string)) error {
	kept, added, err := readTakeoverRecord(filepath.Join(root, takeoverRecord))
	if errors.Is(err, fs.ErrNotExist) {
		say(fmt.Sprintf("no %s: restoring whichever of %s have a %s copy", takeoverRecord, strings.Join(takeoverKept, " "), origSuffix))
		kept = takeoverKept
	} else if err != nil {
		return fmt.Errorf("uninstall: %w", err)
	}
	// /sbin/init first.
	slices.SortStableFunc(kept, func(a, b string) int {
		return boolOrder(b == "/sbin/init") - boolOrder(a == "/sbin/init")
	})
	var errs []error
	restored := 0
	for _, p := range kept {
		full := filepath.Join(root, p)
		if _, err := os.Lstat(full + origSuffix); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := os.Rename(full+origSuffix, full); err != nil {
			errs = append(errs, fmt.Errorf("uninstall: restore %s: %w", p, err))
			continue
		}
		restored++
		say(fmt.Sprintf("restored %s from %s%s", p, p, origSuffix))
	}
	if restored == 0 && len(errs) == 0 {
		return fmt.Errorf("uninstall: %w: no %s copy of %s", errNotTakenOver, origSuffix, strings.Join(kept, " "))
	}
	// /etc/allium last: it holds the record.
	slices.SortStableFunc(added, func(a, b string) int {
		return boolOrder(a == rootfs.ConfigDir) - boolOrder(b == rootfs.ConfigDir)
	})
	for _, p := range added {
		full := filepath.Join(root, p)
		if t, err := os.Readlink(full); err == nil && t != "init.allium" {
			say(fmt.Sprintf("left %s: a link to %s, not install.sh's", p, t))
			continue
		}
		if err := os.RemoveAll(full); err != nil {
			errs = append(errs, fmt.Errorf("uninstall: remove %s: %w", p, err))
			continue
		}
		say("removed " + p)
	}
	for _, d := range []string{"/sbin", "/etc"} {
		durable.SyncDir(filepath.Join(root, d))
	}
	say("kept " + rootfs.DataDir + ", the node's data; remove it by hand once it is not needed")
	return errors.Join(errs...)
}

// errNotTakenOver is an uninstall on a node install.sh did not put in
// a container.
var errNotTakenOver = errors.New("not a container taken over by install.sh")

func boolOrder(b bool) int {
	if b {
		return 1
	}
	return 0
}

// readTakeoverRecord reads install.sh's record: the kept and the added
// paths, absolute, in the container.
func readTakeoverRecord(p string) (kept, added []string, err error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		what, path, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		clean := filepath.Clean(path)
		switch {
		case !ok || !filepath.IsAbs(path) || clean != path || clean == "/":
			return nil, nil, fmt.Errorf("%s:%d: %q: want \"kept PATH\" or \"added PATH\" with an absolute path", p, line, sc.Text())
		case what == "kept":
			kept = append(kept, path)
		case what == "added":
			added = append(added, path)
		default:
			return nil, nil, fmt.Errorf("%s:%d: %q: want \"kept PATH\" or \"added PATH\"", p, line, sc.Text())
		}
	}
	return kept, added, sc.Err()
}

// delegatePower runs the kept original of a power command (argv0 is
// how it was called, e.g. /sbin/halt) when there is one and PID 1 is
// not Allium; it returns only when it did not. powerName is the
// command's base name.
func delegatePower(argv0, powerName string, args []string) {
	if powerName != "init" && !slices.Contains(powerNames, powerName) {
		return
	}
	p := argv0
	if !strings.Contains(p, "/") {
		lp, err := exec.LookPath(p)
		if err != nil {
			return
		}
		p = lp
	}
	orig, ok := keptOriginal(p)
	if !ok || alliumIsPID1() {
		return
	}
	// The original's own name: sysvinit's halt and systemctl tell
	// halt from reboot by it.
	unix.Exec(orig, append([]string{powerName}, args...), os.Environ())
}

// keptOriginal is what install.sh kept of the command at p: p's
// NAME.allium-orig, unless that is a link to another command it
// replaced too (sysvinit's reboot -> halt, now init.allium), which
// stands for that one's kept original. ok is false when there is none,
// or when it would be this binary again (a loop).
func keptOriginal(p string) (orig string, ok bool) {
	var self unix.Stat_t
	if unix.Stat("/proc/self/exe", &self) != nil {
		return "", false
	}
	orig = p + origSuffix
	for range 4 {
		var st unix.Stat_t
		if unix.Stat(orig, &st) != nil {
			return "", false
		}
		if st.Dev != self.Dev || st.Ino != self.Ino {
			return orig, true
		}
		target, err := os.Readlink(orig)
		if err != nil {
			return "", false
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(orig), target)
		}
		orig = target + origSuffix
	}
	return "", false
}

// powerNames are the commands install.sh links to init.allium besides
// init itself.
var powerNames = []string{"halt", "reboot", "poweroff", "shutdown", "telinit"}

// alliumIsPID1 tells whether PID 1 is Allium: the same binary as this
// process, or (after `cloud update`, another one) serving on its socket.
func alliumIsPID1() bool {
	var one, self unix.Stat_t
	if unix.Stat("/proc/1/exe", &one) == nil && unix.Stat("/proc/self/exe", &self) == nil &&
		one.Dev == self.Dev && one.Ino == self.Ino {
		return true
	}
	c, err := net.DialTimeout("unix", rootfs.Socket, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
