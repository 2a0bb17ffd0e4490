package hiddenservice

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLoadOrCreateClientKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cfg", "client.onion")
	k1, created, err := LoadOrCreateClientKeyFile(path)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreateClientKeyFile() = %v, %v, want a new key", created, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, %v, want mode 0600", fi, err)
	}
	k2, created, err := LoadOrCreateClientKeyFile(path)
	if err != nil || created || !k1.Equal(k2) {
		t.Errorf("second LoadOrCreateClientKeyFile() = created %v, %v, same key %v; want the stored key", created, err, k1.Equal(k2))
	}
	if err := os.WriteFile(path, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateClientKeyFile(path); err == nil {
		t.Error("LoadOrCreateClientKeyFile(a broken file) = nil error; want one, and the file kept")
	}
	if b, _ := os.ReadFile(path); string(b) != "not a key\n" {
		t.Errorf("a broken key file was overwritten: %q", b)
	}
}
