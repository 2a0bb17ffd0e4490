package supervisor

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The supervisor knows nothing of the API, tor or bbolt, and PID 1 links
// it: no testing code either. Of outside packages it imports directly
// only imagestore (for the Manifest), internal/safe (PID 1's panic
// guard) and x/sys.
func TestImports(t *testing.T) {
	deps := goList(t, "{{.ImportPath}}", "-deps")
	for _, bad := range []string{"allium/api", "allium/state", "allium/hiddenservice", "go.etcd.io/bbolt", "testing"} {
		if slices.Contains(deps, bad) {
			t.Errorf("supervisor depends on %s", bad)
		}
	}
	for _, p := range goList(t, `{{join .Imports "\n"}}`) {
		if strings.Contains(strings.Split(p, "/")[0], ".") && !strings.HasPrefix(p, "golang.org/x/sys/") || strings.HasPrefix(p, "allium/") && p != "allium/imagestore" && p != "allium/internal/safe" {
			t.Errorf("supervisor imports %s; outside the standard library only allium/imagestore, allium/internal/safe and golang.org/x/sys", p)
		}
	}
}

func goList(t *testing.T, format string, flags ...string) []string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command on PATH")
	}
	args := append(append([]string{"list"}, flags...), "-f", format, ".")
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.Fields(string(out))
}
