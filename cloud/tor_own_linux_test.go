package main

import (
	"io"
	"syscall"
	"testing"

	"github.com/cretz/bine/process"
)

// On Linux cloud's own tor gets SIGTERM when cloud dies, even before
// TAKEOWNERSHIP; the SysProcAttr moved behind torProcAttr so that cloud
// builds on macOS, and this keeps Linux as it was.
func TestTorCreatorPdeathsig(t *testing.T) {
	create, ok := torCreator("/usr/sbin/tor", io.Discard).(process.CmdCreatorFunc)
	if !ok {
		t.Fatalf("torCreator returned %T, want a process.CmdCreatorFunc", torCreator("", nil))
	}
	cmd, err := create(t.Context(), "--version")
	if err != nil {
		t.Fatal(err)
	}
	if a := cmd.SysProcAttr; a == nil || a.Pdeathsig != syscall.SIGTERM {
		t.Errorf("torCreator(...)(ctx, \"--version\").SysProcAttr = %+v, want Pdeathsig SIGTERM", a)
	}
}
