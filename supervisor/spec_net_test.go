package supervisor

import (
	"errors"
	"os"
	"reflect"
	"testing"

	"allium/supervisor/isolation"

	"golang.org/x/sys/unix"
)

// A private network adds a network namespace to the shim's clone
// flags, at the namespaces rung and above only; without one the
// container shares the node's network.
func TestCommandPrivateNet(t *testing.T) {
	ns := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	tests := []struct {
		rung    isolation.Rung
		private bool
		want    uintptr
	}{
		{isolation.Namespaces, false, ns},
		{isolation.Namespaces, true, ns | unix.CLONE_NEWNET},
		{isolation.Userns, true, ns | unix.CLONE_NEWNET},
		{isolation.Cgroups, true, ns | unix.CLONE_NEWNET},
		{isolation.Chroot, true, 0}, // Validate refuses it; Command adds nothing
	}
	for _, tt := range tests {
		s := testSpec()
		s.Rung, s.PrivateNet = tt.rung, tt.private
		if got := Command("/x", s, nil, nil).SysProcAttr.Cloneflags; got&^unix.CLONE_NEWUSER != tt.want {
			t.Errorf("Command(rung %v, private %v).Cloneflags = %#x, want %#x", tt.rung, tt.private, got, tt.want)
		}
	}
}

func TestValidatePrivateNet(t *testing.T) {
	s := testSpec()
	s.PrivateNet = true
	if err := s.Validate(); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("Validate(private network at chroot) = %v, want ErrInvalidSpec", err)
	}
	s.Rung = isolation.Namespaces
	if err := s.Validate(); err != nil {
		t.Errorf("Validate(private network at namespaces) = %v, want nil", err)
	}
}

// The network gate is the descriptor after the status and readiness
// pipes, whichever way those are numbered.
func TestWithNetGate(t *testing.T) {
	st, rd, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	defer rd.Close()
	gate := os.NewFile(^uintptr(0), "gate") // never read: identity only
	tests := []struct {
		readyFD   int
		ready     *os.File
		wantExtra []*os.File
		wantFD    string
	}{
		{0, nil, []*os.File{st, gate}, "4"},
		{3, rd, []*os.File{rd, st, gate}, "5"},
		{6, rd, []*os.File{st, nil, nil, rd, gate}, "7"},
	}
	for _, tt := range tests {
		cmd := Command("/x", testSpec(), nil, nil)
		withStatus(cmd, st, tt.readyFD, tt.ready)
		withNetGate(cmd, gate)
		if !reflect.DeepEqual(cmd.ExtraFiles, tt.wantExtra) {
			t.Errorf("withNetGate after ready fd %d: ExtraFiles = %v, want %v", tt.readyFD, cmd.ExtraFiles, tt.wantExtra)
		}
		if got := cmd.Env[len(cmd.Env)-1]; got != ShimNetEnv+"="+tt.wantFD {
			t.Errorf("withNetGate after ready fd %d: env = %q, want %s=%s", tt.readyFD, got, ShimNetEnv, tt.wantFD)
		}
	}
}
