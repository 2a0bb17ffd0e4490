package main

import (
	"fmt"
	"os/exec"
	"syscall"

	"allium/supervisor"
)

// PID 1 acts on a shutdown signal (SIGTERM, SIGINT, SIGPWR) only from
// the kernel or from the node's own processes outside containers. Go
// gives a handler no siginfo, so PID 1 cannot look at the sender; it
// lets the kernel check it instead. A process may signal another only
// with CAP_KILL or when its real or effective uid is the target's real
// or saved uid (kill_ok_by_cred in kernel/signal.c). guardSignals makes
// PID 1's real and saved uid and gid supervisor.InitUID, which no
// workload has, and keeps its effective ids 0 (and so its
// capabilities):
//
//	sender                                        may signal PID 1
//	the kernel (ctrl-alt-del, orderly_poweroff)   yes: not from a user
//	root on the node (poweroff, an OS container's  yes: CAP_KILL
//	  host outside its pid namespace)
//	a root container at the chroot rung            no: no CAP_KILL, no CAP_SETUID
//	any other container at the chroot rung         no: another uid
//	a container at the namespaces rung and up      cannot name it (its own pid namespace)
//
// Package syscall's Setresuid changes every thread of the process, as
// a process-wide check needs (x/sys/unix's changes one thread).
func (n *node) guardSignals() {
	if err := takeInitUID(); err != nil {
		n.log.Warn("signals: cannot take PID 1's own real uid; a root container at the chroot rung could signal it", "err", err)
		n.warn(err.Error() + "; a root container at the chroot rung could power the node off with kill -TERM 1")
		return
	}
	n.reaper.rootAgain = true
	n.log.Info("signals: PID 1's real uid is its own", "uid", supervisor.InitUID)
}

func takeInitUID() error {
	id := supervisor.InitUID
	if err := syscall.Setresgid(id, 0, id); err != nil {
		return fmt.Errorf("setresgid(%d, 0, %d): %w", id, id, err)
	}
	if err := syscall.Setresuid(id, 0, id); err != nil {
		return fmt.Errorf("setresuid(%d, 0, %d): %w", id, id, err)
	}
	return nil
}

// asRoot gives a child real uid and gid 0 again, as it would have had
// without guardSignals: tor and the helpers expect getuid() to be 0
// (tor's User switch does), and a child with PID 1's real uid could
// signal it. A child that sets its own credentials, or starts in a user
// namespace (where 0 is another id), is left as it is. SysProcAttr is
// copied, not changed: a caller may share it.
func asRoot(cmd *exec.Cmd) {
	var a syscall.SysProcAttr
	if cmd.SysProcAttr != nil {
		a = *cmd.SysProcAttr
	}
	if a.Credential != nil || a.Cloneflags&syscall.CLONE_NEWUSER != 0 {
		return
	}
	a.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	cmd.SysProcAttr = &a
}
