package mountinfo

import (
	"runtime"
	"slices"
	"testing"
)

func TestUnder(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("no /proc/self/mountinfo")
	}
	if got := Under("/proc"); !slices.Contains(got, "/proc") {
		t.Errorf("Under(/proc) = %v, want /proc among them", got)
	}
	if got := Under("/nonexistent/dir"); len(got) != 0 {
		t.Errorf("Under(/nonexistent/dir) = %v, want none", got)
	}
}
