package debian

import (
	"strings"
	"testing"
)

func TestKey(t *testing.T) {
	base := Recipe{Suite: "bookworm", Variant: "minbase", Include: []string{"udev", "iproute2"}, Setup: "true"}
	key := base.Key()
	if !strings.HasPrefix(key, "bookworm-minbase-") || len(key) != len("bookworm-minbase-")+16 {
		t.Errorf("Key() = %q, want bookworm-minbase- and 16 hex digits", key)
	}
	if again := base.Key(); again != key {
		t.Errorf("Key() = %q, then %q: want the same key every time", key, again)
	}
	same := base
	same.Include = []string{"iproute2", "udev", "udev"}
	if got := same.Key(); got != key {
		t.Errorf("Key() with Include reordered and repeated = %q, want %q", got, key)
	}
	if got := (Recipe{Suite: "bookworm"}).Key(); !strings.HasPrefix(got, "bookworm-default-") {
		t.Errorf("Key() without a variant = %q, want bookworm-default-...", got)
	}
	for name, r := range map[string]Recipe{
		"suite":   {Suite: "trixie", Variant: "minbase", Include: base.Include, Setup: "true"},
		"variant": {Suite: "bookworm", Include: base.Include, Setup: "true"},
		"include": {Suite: "bookworm", Variant: "minbase", Include: []string{"udev"}, Setup: "true"},
		"setup":   {Suite: "bookworm", Variant: "minbase", Include: base.Include, Setup: "false"},
		// No way to move text between fields and keep the key.
		"fields": {Suite: "bookworm", Variant: "minbase", Include: []string{"udev,iproute2"}, Setup: "true"},
	} {
		if got := r.Key(); got == key {
			t.Errorf("Key() with another %s = %q, the same as %+v's", name, got, base)
		}
	}
}
