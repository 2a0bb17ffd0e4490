//go:build !linux

package api

import (
	"context"
	"net"
	"net/http"
)

// Off Linux there are no peer credentials to check, so the unix socket
// serves nobody; the node itself only runs on Linux.
func connContext(ctx context.Context, _ net.Conn) context.Context { return ctx }

func requireRoot(http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, "the unix socket needs Linux peer credentials")
	})
}
