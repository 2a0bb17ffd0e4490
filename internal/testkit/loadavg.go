package testkit

import (
	"os"
	"strings"
)

// LoadAverage is /proc/loadavg's first three fields, for a benchmark to
// print beside its numbers (the machine is shared), or "unknown".
func LoadAverage() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
