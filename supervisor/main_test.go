package supervisor

import (
	"os"
	"testing"
)

// TestMain lets the test binary play the shim, as PID 1's binary does:
// the root tier starts it as "init shim" (Command's argv).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "shim" {
		os.Exit(ShimMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}
