package tornet

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestDescendantPIDsFindsGrandchildren(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 30 & echo $!; wait")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var grandchild int
	if _, err := fmt.Fscan(out, &grandchild); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(grandchild, syscall.SIGKILL)
	// Regression: the shell echoes the pid before the forked child has
	// exec'd sleep (its comm is still "sh"); wait for the exec.
	comm := fmt.Sprintf("/proc/%d/comm", grandchild)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(comm); strings.TrimSpace(string(b)) == "sleep" {
			break
		}
	}
	if got := DescendantPIDs("sleep"); !slices.Contains(got, grandchild) {
		t.Errorf("DescendantPIDs(sleep) = %v, want the grandchild %d among them", got, grandchild)
	}
	if got := ChildPIDs("sleep"); slices.Contains(got, grandchild) {
		t.Errorf("ChildPIDs(sleep) = %v holds the grandchild %d", got, grandchild)
	}
}
