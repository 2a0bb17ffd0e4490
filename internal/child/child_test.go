package child

import (
	"errors"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

func TestStartChecksTheContract(t *testing.T) {
	ok := make(chan unix.WaitStatus, 1)
	tests := []struct {
		name string
		s    Starter
		pid  int // cmd.Process.Pid the Starter leaves; 0: no Process
		want error
	}{
		{"nil", nil, 0, ErrNoStarter},
		{"no process", StarterFunc(func(*exec.Cmd) (<-chan unix.WaitStatus, error) { return ok, nil }), 0, ErrNoPID},
		{"released", nil, -1, ErrNoPID},
		{"pid 1", nil, 1, ErrNoPID},
		{"good", nil, 4242, nil},
	}
	for _, tt := range tests {
		cmd := exec.Command("/bin/true")
		s := tt.s
		if s == nil && tt.name != "nil" {
			pid := tt.pid
			s = StarterFunc(func(cmd *exec.Cmd) (<-chan unix.WaitStatus, error) {
				cmd.Process = &os.Process{Pid: pid}
				return ok, nil
			})
		}
		ch, err := Start(s, cmd)
		if !errors.Is(err, tt.want) || (err == nil) != (ch != nil) {
			t.Errorf("%s: Start = %v, %v; want %v", tt.name, ch, err, tt.want)
		}
	}
	failed := errors.New("fork: EAGAIN")
	if _, err := Start(StarterFunc(func(*exec.Cmd) (<-chan unix.WaitStatus, error) { return nil, failed }), exec.Command("x")); err != failed {
		t.Errorf("Start of a failing Starter = %v, want its error", err)
	}
}
