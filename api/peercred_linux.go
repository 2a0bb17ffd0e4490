package api

import (
	"context"
	"fmt"
	"net"
	"net/http"

	"golang.org/x/sys/unix"
)

type credKey struct{}

// peerCred is the unix socket peer's credentials, or nil on other
// transports or when they could not be read.
type peerCred struct{ uid uint32 }

func connContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return ctx
	}
	return context.WithValue(ctx, credKey{}, &peerCred{uid: cred.Uid})
}

func requireRoot(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Context().Value(credKey{}).(*peerCred)
		if c == nil || c.uid != 0 {
			msg := "the unix socket serves root only"
			if c != nil {
				msg = fmt.Sprintf("the unix socket serves root only, not uid %d", c.uid)
			}
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusUnauthorized, CodeUnauthorized, msg)
			return
		}
		h.ServeHTTP(w, r)
	})
}
