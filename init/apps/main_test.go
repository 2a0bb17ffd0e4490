package apps

import (
	"os"
	"testing"

	"allium/imagestore"
	"allium/supervisor"
	"allium/supervisor/idmap"
)

// TestMain lets the test binary play PID 1's helpers, as init does: the
// Service starts /proc/self/exe as "init unpack" and "init shim".
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[0] == "init" {
		switch os.Args[1] {
		case "unpack":
			os.Exit(imagestore.HelperMain(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
		case "shim":
			os.Exit(supervisor.ShimMain(os.Args[2:]))
		case "userns":
			os.Exit(idmap.HoldMain(os.Stdin))
		}
	}
	os.Exit(m.Run())
}
