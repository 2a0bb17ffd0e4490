package testkit

import (
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

// NetNS makes a network namespace for the test, closed at its end
// (the namespace goes with its last reference: links in it are
// deleted). Root tier only.
func NetNS(tb testing.TB) netns.NsHandle {
	tb.Helper()
	var ns netns.NsHandle
	err := OnThread(func() (err error) {
		ns, err = netns.New() // switches the thread; OnThread switches it back
		return err
	})
	if err != nil {
		tb.Fatalf("new network namespace: %v", err)
	}
	tb.Cleanup(func() { ns.Close() })
	return ns
}

// OnThread runs f on a locked thread and puts the thread back into the
// process's network namespace after. Threads are not thrown away: a
// child started with a parent-death signal (Starter) dies with the
// thread that forked it.
func OnThread(f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			done <- err
			return
		}
		defer orig.Close()
		err = f()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

// InNetNS runs f on a thread in ns: the sockets f makes are ns's.
func InNetNS(ns netns.NsHandle, f func() error) error {
	return OnThread(func() error {
		if err := netns.Set(ns); err != nil {
			return err
		}
		return f()
	})
}
