// Package debian builds Debian root trees with debootstrap, for tests
// that need a real Debian to act on (the installer's takeover of a
// Debian guest under QEMU, the OpenVZ installer test), and caches them
// outside the work tree so that only the first run pays for the build.
//
// A Recipe says what to build: a suite, a debootstrap variant, extra
// packages and a setup script run chrooted in the new tree. Tree
// returns the cached tree's directory, building it when it is missing;
// Copy copies a tree for a caller that must change it. The tree itself
// must never be modified: other tests, and later runs, share it.
//
// # The cache
//
// Everything lives under Root (/var/cache/allium-test):
//
//	debian/debs/                  debootstrap --cache-dir: the .debs, shared by all recipes
//	debian/debs.lock              held while a debootstrap uses debs/
//	debian/SUITE-VARIANT-HASH/    a finished tree (HASH: Recipe.Key)
//	debian/SUITE-VARIANT-HASH.lock
//	debian/SUITE-VARIANT-HASH.log debootstrap's and the setup script's output
//	debian/SUITE-VARIANT-HASH.tmp a build in progress, or one a crash left
//
// The key hashes the recipe (its Include list sorted and without
// duplicates, so order does not matter), the mirror, and Version, which
// changes whenever this package builds trees differently: an old tree is
// then simply not found. Nothing removes old entries; reclaim the space
// with rm -rf /var/cache/allium-test/debian.
//
// Cached is the same discipline for any other cached build (the QEMU
// tier's Debian guest image is one): concurrent test processes (go test
// runs packages in parallel) take an exclusive flock on NAME.lock, the
// one holding it builds into NAME.tmp and renames that to NAME when it
// is complete, and the others, once they get the lock, find NAME there.
// A directory named NAME is therefore always complete.
//
// Building needs root (debootstrap, chroot, mounts), debootstrap
// (tools/deps.sh installs it) and the network: the Debian mirror apt
// uses, http://deb.debian.org/debian, and nothing else. The setup
// script runs in a private mount namespace (unshare -m) with /proc,
// /sys and /dev mounted, DEBIAN_FRONTEND=noninteractive, and a
// /usr/sbin/policy-rc.d that stops any service from starting; the
// policy is removed after, so the tree's services start when it boots.
//
// It does not boot anything: the QEMU tier (qemu-tests) makes a disk
// image of a tree and boots it.
package debian
