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
