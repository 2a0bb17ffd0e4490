package testkit

import (
	"errors"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"

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

func TestStarterAdopts(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "read x; exit 7")
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	ch, err := child.Start(Starter, cmd)
	if err != nil {
		t.Fatal(err)
	}
	adopted, err := Starter.Adopt(cmd.Process.Pid)
	if err != nil {
		t.Fatalf("Adopt(%d): %v", cmd.Process.Pid, err)
	}
	w.Close()
	for _, c := range []<-chan unix.WaitStatus{ch, adopted} {
		if ws := <-c; !ws.Exited() || ws.ExitStatus() != 7 {
			t.Errorf("wait status %v, want exit 7", ws)
		}
	}
	late, err := Starter.Adopt(cmd.Process.Pid) // after the exit
	if err != nil {
		t.Fatalf("Adopt(%d) after its exit: %v", cmd.Process.Pid, err)
	}
	if ws := <-late; ws.ExitStatus() != 7 {
		t.Errorf("late adoption: wait status %v, want exit 7", ws)
	}
	if _, err := Starter.Adopt(1); !errors.Is(err, child.ErrNotChild) {
		t.Errorf("Adopt(1) = %v, want ErrNotChild", err)
	}
}
