package rootfs

import (
	"strings"
	"testing"
)

// Every account line has passwd(5)'s seven fields and group(5)'s four,
// and the tor user is there with its uid, gid and home.
func TestAccountFiles(t *testing.T) {
	passwd, group := string(Passwd(Users)), string(Group(Users))
	for _, l := range strings.Split(strings.TrimSuffix(passwd, "\n"), "\n") {
		if n := len(strings.Split(l, ":")); n != 7 {
			t.Errorf("passwd line %q: %d fields, want 7", l, n)
		}
	}
	for _, l := range strings.Split(strings.TrimSuffix(group, "\n"), "\n") {
		if n := len(strings.Split(l, ":")); n != 4 {
			t.Errorf("group line %q: %d fields, want 4", l, n)
		}
	}
	if want := "allium-tor:x:990:990::/var/lib/allium/tor:/bin/false\n"; !strings.Contains(passwd, want) {
		t.Errorf("Passwd(Users) = %q, want the line %q", passwd, want)
	}
	if want := "allium-tor:x:990:\n"; !strings.Contains(group, want) {
		t.Errorf("Group(Users) = %q, want the line %q", group, want)
	}
}
