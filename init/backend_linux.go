package main

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"allium/api"

	"golang.org/x/sys/unix"
)

// version is set by the build (-ldflags -X main.version=...).
var version = "dev"

// The node is the API's backend.
var _ api.Backend = (*node)(nil)

func (n *node) Node(ctx context.Context) (api.Node, error) {
	return api.Node{
		Name:          n.cfg.Name,
		Version:       version,
		Kernel:        kernelRelease(),
		UptimeSeconds: n.uptime().Seconds(),
		BootCount:     n.bootCount,
		Environment:   n.environment(),
		Persistent:    n.data.Persistent,
		Data:          n.data.Desc,
		Memory:        n.memory(),
		TCP:           n.tcpAddr(),
		Tor:           n.torStatus(),
		Warnings:      n.currentWarnings(),
	}, nil
}

// uptime is the machine's in a VM, and PID 1's own in an OS container,
// where /proc/uptime may be the host's.
func (n *node) uptime() time.Duration {
	if !n.container {
		var si unix.Sysinfo_t
		if unix.Sysinfo(&si) == nil {
			return time.Duration(si.Uptime) * time.Second
		}
	}
	return time.Since(n.started).Round(time.Second)
}

func (n *node) memory() api.Memory {
	mem := parseKB(readFile(filepath.Join(n.root, "proc/meminfo")))
	self := parseKB(readFile(filepath.Join(n.root, "proc/self/status")))
	return api.Memory{Total: mem["MemTotal"], Available: mem["MemAvailable"], InitRSS: self["VmRSS"]}
}

// parseKB reads "Key:   123 kB" lines into bytes.
func parseKB(s string) map[string]uint64 {
	out := map[string]uint64{}
	for _, line := range strings.Split(s, "\n") {
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

func (n *node) Reboot() error   { n.requestPower(powerReboot); return nil }
func (n *node) Poweroff() error { n.requestPower(powerOff); return nil }
