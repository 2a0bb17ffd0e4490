package procstatus

import (
	"strconv"
	"strings"
)

// Hex reads the hex mask of key ("CapEff", "SigIgn") in status text,
// and false if the line is missing or not hex.
func Hex(status, key string) (uint64, bool) {
	for _, line := range strings.Split(status, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && k == key {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return m, err == nil
		}
	}
	return 0, false
}

// Bytes reads the "Key:   123 kB" lines of text, in bytes. Lines in
// other units, or with none, are left out.
func Bytes(text string) map[string]uint64 {
	out := map[string]uint64{}
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, ":")
		f := strings.Fields(v)
		if !ok || len(f) != 2 || f[1] != "kB" {
			continue
		}
		if kb, err := strconv.ParseUint(f[0], 10, 64); err == nil {
			out[k] = kb * 1024
		}
	}
	return out
}
