package main

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"allium/internal/procstatus"

	"allium/api"
	"allium/init/apps"

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
		Install:       n.installedAs(),
		Persistent:    n.data.Persistent,
		Data:          n.data.Desc,
		Memory:        n.memory(),
		Disk:          n.disk(),
		Cgroup:        n.cgroupView(),
		TCP:           n.tcpAddr(),
		Tor:           n.torStatus(),
		Isolation:     n.isolationView(),
		Update:        n.updateView(),
		Warnings:      append(n.currentWarnings(), n.heldWarnings()...),
	}, nil
}

// heldWarnings are the containers boot-loop protection holds, while it
// holds them: an operator's start clears one.
func (n *node) heldWarnings() []string {
	if n.apps == nil {
		return nil
	}
	return n.apps.Held()
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

// memory is the machine's memory, or in an OpenVZ container the less
// of that and what its beancounters allow (/proc/meminfo there may be
// the host's): the cgroup defaults and the node's reserve are shares of
// Total.
func (n *node) memory() api.Memory {
	mem := procstatus.Bytes(readFile(filepath.Join(n.root, "proc/meminfo")))
	self := procstatus.Bytes(readFile(filepath.Join(n.root, "proc/self/status")))
	m := api.Memory{Total: mem["MemTotal"], Available: mem["MemAvailable"], InitRSS: self["VmRSS"]}
	if !n.container {
		return m
	}
	limit, held, ok := beancounterMemory(readFile(filepath.Join(n.root, beancountersFile)), uint64(os.Getpagesize()))
	if ok && (m.Total == 0 || limit < m.Total) {
		m.Total = limit
		m.Available = min(m.Available, limit-min(held, limit))
		if mem["MemAvailable"] == 0 {
			m.Available = limit - min(held, limit)
		}
	}
	return m
}

// disk is the data disk's space; nil without the image store.
func (n *node) disk() *api.Disk {
	if n.apps == nil {
		return nil
	}
	return n.apps.Disk()
}

func (n *node) Reboot() error   { n.requestPower(powerReboot, apps.ShutdownOperator); return nil }
func (n *node) Poweroff() error { n.requestPower(powerOff, apps.ShutdownOperator); return nil }
