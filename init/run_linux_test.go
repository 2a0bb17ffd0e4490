package main

import (
	"io"
	"testing"

	"allium/supervisor"
)

// Regression: at the namespaces rung the shim is pid 1 of its pid
// namespace, and "init shim" with pid 1 booted the node's PID 1 inside
// the container. With the shim's config in the environment it is the
// shim (here failing on a bad config), whatever its pid.
func TestRunShimAsPID1OfANamespace(t *testing.T) {
	t.Setenv(supervisor.ShimSpecEnv, "not json")
	if got := run([]string{"init", "shim"}, 1, io.Discard); got != supervisor.ExitShimUsage {
		t.Errorf("run(init shim) as pid 1 with %s set = %d, want %d (the shim's usage error)", supervisor.ShimSpecEnv, got, supervisor.ExitShimUsage)
	}
}
