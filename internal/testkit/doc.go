// Package testkit holds the helpers that Allium's tests would otherwise
// write once per package: the gates of the heavy test tiers (NeedRoot,
// RootTier, NeedTor), a buffer that goroutines write while a test reads
// it (LockedBuffer), a sleep that ends with its context (Sleep), a
// fresh loop-mounted ext4 (Ext4, root tier), network namespaces and
// threads in them (NetNS, InNetNS, root tier), and the one stand-in for
// PID 1's reaper (Starter, a child.Starter that waits with cmd.Wait:
// a test process has no other waiter).
//
// It is for tests only: only _test.go files and other test-only
// packages (internal/tornet) import it. It must never be linked into
// init, or any other binary; init's TestInitImports forbids it.
//
// It does not own the tiers' own fixtures: the private Tor network is
// internal/tornet, the QEMU tier's boot harness is qemu-tests, and how
// tests find Allium's binaries is internal/testbin. Cached Debian trees
// built by debootstrap are its subpackage internal/testkit/debian.
package testkit
