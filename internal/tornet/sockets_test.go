package tornet

import (
	"fmt"
	"os/exec"
	"slices"
	"syscall"
	"testing"
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
	if got := DescendantPIDs("sleep"); !slices.Contains(got, grandchild) {
		t.Errorf("DescendantPIDs(sleep) = %v, want the grandchild %d among them", got, grandchild)
	}
	if got := ChildPIDs("sleep"); slices.Contains(got, grandchild) {
		t.Errorf("ChildPIDs(sleep) = %v holds the grandchild %d", got, grandchild)
	}
}
