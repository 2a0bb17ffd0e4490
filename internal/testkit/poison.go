package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BuildPoison builds allium/internal/poison, a static test workload
// that tries the node's unix socket from inside a container, and
// returns its path.
func BuildPoison(tb testing.TB) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "poison")
	cmd := exec.Command("go", "build", "-trimpath", "-o", p, "allium/internal/poison")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build allium/internal/poison: %v\n%s", err, out)
	}
	return p
}

// PoisonScript is the poison container's shell command (busybox): the
// socket helper at /poison, then every way a container could try to
// stop the node or its neighbours, the forced ones first (busybox's
// plain halt and reboot signal PID 1). It ignores the signals it sends
// (at the namespaces rung the shim forwards them back to it) and prints
// "poisoned" at the end.
const PoisonScript = `trap '' TERM INT PWR USR1 USR2 HUP; /poison; kill -TERM 1; kill -INT 1; kill -PWR 1; kill -KILL -1; ` +
	`reboot -f; halt -f; poweroff -f; echo poisoned; halt; reboot; poweroff; sleep 1`
