package testkit

import (
	"os/exec"
	"testing"

	"allium/internal/child"
)

func TestStarterDeliversTheWaitStatus(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
	}{{[]string{"/bin/sh", "-c", "exit 3"}, 3}, {[]string{"/bin/true"}, 0}} {
		cmd := exec.Command(tt.args[0], tt.args[1:]...)
		ch, err := child.Start(Starter, cmd)
		if err != nil {
			t.Fatalf("Start(%v): %v", tt.args, err)
		}
		if ws := <-ch; !ws.Exited() || ws.ExitStatus() != tt.code {
			t.Errorf("%v: wait status %v, want exit %d", tt.args, ws, tt.code)
		}
	}
	if _, err := child.Start(Starter, exec.Command("/nonexistent")); err == nil {
		t.Error("Start(/nonexistent) = nil error")
	}
}
