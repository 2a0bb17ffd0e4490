package main

import (
	"testing"

	"allium/api"
)

func TestTCPSwitch(t *testing.T) {
	f := newFleet(t)
	// The fake node has no onion: switching TCP off over TCP is refused.
	code, _, stderr := f.cloud(t, "tcp", "web1", "off")
	if code != 1 {
		t.Errorf("cloud tcp web1 off, no onion: exit %d, want 1", code)
	}
	wantContains(t, "stderr", stderr, "would leave no way in", "runs no tor", api.CodeLockOut)
	code, stdout, _ := f.cloud(t, "tcp", "web1", "off", "--force")
	if code != 0 {
		t.Errorf("cloud tcp web1 off --force: exit %d, want 0", code)
	}
	wantContains(t, "stdout", stdout, "web1: TCP off")
	code, stdout, _ = f.cloud(t, "tcp", "web1", "on")
	if code != 0 {
		t.Errorf("cloud tcp web1 on: exit %d, want 0", code)
	}
	wantContains(t, "stdout", stdout, "web1: TCP on, listening on :7707")
	if code, _, stderr = f.cloud(t, "tcp", "web1", "maybe"); code != 2 {
		t.Errorf("cloud tcp web1 maybe: exit %d, want 2 (usage)", code)
	}
	wantContains(t, "stderr", stderr, "on or off")
}
