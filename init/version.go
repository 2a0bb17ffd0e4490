package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"

	"allium/api"
	hv "allium/init/handover"
	"allium/state"
)

// handover is the version of the protocol by which a running PID 1
// hands the node over to a new init (re-executing in place): a new init
// is accepted only if it speaks the running one's. Package handover
// defines it, with the document that crosses the execve.
const handoverVersion = hv.Version

// selfVersion is what this build says of itself in `init version`.
func selfVersion() api.InitVersion {
	return api.InitVersion{Version: version, StateSchema: state.SchemaVersion, Arch: runtime.GOARCH, Handover: handoverVersion}
}

// versionMain is `init version [--json]`: it prints what this build is
// and exits 0. It needs no root and touches nothing, so that a running
// node can ask a new init before it trusts it (update_linux.go), and
// cloud can ask the one it is about to send.
func versionMain(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 1 && args[0] == "--json":
		if err := json.NewEncoder(stdout).Encode(selfVersion()); err != nil {
			return 1
		}
		return 0
	case len(args) == 0:
		v := selfVersion()
		fmt.Fprintf(stdout, "init %s (%s, state schema %d, handover %d)\n", v.Version, v.Arch, v.StateSchema, v.Handover)
		return 0
	}
	fmt.Fprintln(stderr, "usage: init version [--json]")
	return 2
}
