//go:build linux

// Command bareinit is the baseline of BenchmarkBoot in package qemutests:
// about the least a Go PID 1 can do. It mounts /proc, prints one marker
// line to its stdout (the kernel's /dev/console, the serial port) with its
// own resident set and the guest's memory in use, and powers the machine
// off with reboot(2), so QEMU exits.
//
//	BAREINIT_OK vmrss_kb=1234 used_kb=35678
//
// used_kb is MemTotal - MemAvailable from /proc/meminfo; vmrss_kb is
// VmRSS from /proc/self/status. A value it could not read is 0.
//
// It imports only os, strconv, strings and syscall, to stay small.
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
