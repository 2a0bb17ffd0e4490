package testkit

import (
	"os"
	"strings"
)

// LoadAverage is /proc/loadavg's first three fields ("?" where it
// cannot be read), for benchmarks to print beside their numbers: on a
// shared machine they mean little without it.
func LoadAverage() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
