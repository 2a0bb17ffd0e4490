package testbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Path returns the binary called name ("init", "cloud", "mkimage").
func Path(tb testing.TB, name string) string {
	tb.Helper()
	if dir := os.Getenv("ALLIUM_BIN"); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			tb.Fatalf("ALLIUM_BIN=%s: %v (run make build)", dir, err)
		}
		return p
	}
	p := filepath.Join(tb.TempDir(), name)
	cmd := exec.Command("go", "build", "-trimpath", "-o", p, "allium/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build allium/%s: %v\n%s", name, err, out)
	}
	return p
}
