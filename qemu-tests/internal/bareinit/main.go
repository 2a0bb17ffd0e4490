//go:build linux

package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// marker starts the line BenchmarkBoot waits for; qemu-tests spells it
// the same way.
const marker = "BAREINIT_OK"

func main() {
	// /proc is in the initramfs mkimage builds; EBUSY means mounted.
	if err := syscall.Mount("proc", "/proc", "proc", 0, ""); err != nil && err != syscall.EBUSY {
		os.Stdout.WriteString("bareinit: mount /proc: " + err.Error() + "\n")
	}
	self := readKB("/proc/self/status")
	mem := readKB("/proc/meminfo")
	var used uint64
	if mem["MemTotal"] > mem["MemAvailable"] {
		used = mem["MemTotal"] - mem["MemAvailable"]
	}
	os.Stdout.WriteString(marker + " vmrss_kb=" + strconv.FormatUint(self["VmRSS"], 10) +
		" used_kb=" + strconv.FormatUint(used, 10) + "\n")
	syscall.Sync()
	if err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		os.Stdout.WriteString("bareinit: reboot(2): " + err.Error() + "\n")
	}
	select {} // PID 1 must not exit: the kernel would panic
}

// readKB reads the "Key:   123 kB" lines of a /proc file.
func readKB(path string) map[string]uint64 {
	out := map[string]uint64{}
	b, err := os.ReadFile(path)
	if err != nil {
		os.Stdout.WriteString("bareinit: " + err.Error() + "\n")
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		f := strings.Fields(v)
		if !ok || len(f) != 2 || f[1] != "kB" {
			continue
		}
		if n, err := strconv.ParseUint(f[0], 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}
