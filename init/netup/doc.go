// Package netup brings up the node's network for PID 1: the loopback link,
// one ethernet link configured statically or by DHCPv4, the default route,
// the hostname and resolv.conf.
//
// # What it owns
//
//   - Parsing the kernel's ip= parameter into a Config (ParseIP).
//   - Waiting for the link to appear, setting it up, waiting briefly for
//     carrier.
//   - Applying a static address, default route and DNS servers.
//   - A DHCPv4 client that acquires a lease, applies it (the address carries
//     the lease as its kernel lifetime), and keeps it for as long as the
//     caller's context lives: renew at T1, rebind at T2, start over when the
//     lease is lost, back off and retry forever when no server answers.
//   - Rendering resolv.conf and replacing it atomically.
//
// # What it does not own
//
//   - Reading /proc/cmdline or the baked configuration, and deciding which
//     wins: init does that and hands Up a Config.
//   - Loading the NIC driver: init loads modules first; Up only waits for the
//     link to show up.
//   - IPv6, more than one link, bridges, NAT for containers, NTP, MTU, DHCP
//     option 121 (classless routes). A router outside the leased subnet (the
//     /32 setups of Hetzner or GCP) gets an on-link default route instead.
//   - The choice to skip networking in an OS container: init decides and
//     does not call Up.
//
// # The kernel seam
//
// Everything that changes kernel state goes through the small kernel
// interface (kernel.go): list links, set a link up, replace or delete an
// address, replace a route, set the hostname. Its Linux implementation
// (kernel_linux.go) is a thin layer over netlink. Unit tests use a fake
// that records the calls; the root tests run the real thing inside network
// namespaces they create. resolv.conf is a plain file and is written for
// real, into t.TempDir() in tests.
//
// # Dependencies, and why each is here
//
//   - golang.org/x/sys/unix: sethostname and the IFF_RUNNING flag. The
//     standard library's syscall package is frozen.
//   - github.com/vishvananda/netlink (v1.3.1): rtnetlink messages for links,
//     addresses with lifetimes, and routes with the onlink flag. The standard
//     library can read interfaces but cannot change them. It pulls in
//     github.com/vishvananda/netns, which the root tests also use.
//   - github.com/insomniacslk/dhcp, packages dhcpv4 (message encoding and
//     options) and dhcpv4/nclient4 (a client over a raw packet socket, which
//     works on a link that has no address yet, with DORA, Renew and
//     SendAndRead). Writing a DHCP client is more code than the rest of this
//     package. nclient4 pulls in github.com/mdlayher/packet and
//     github.com/mdlayher/socket (the packet socket),
//     golang.org/x/net/bpf, golang.org/x/sync/errgroup,
//     github.com/josharian/native and github.com/u-root/uio (which drags in
//     github.com/pierrec/lz4/v4, a few KB linked). The root tests also use
//     dhcpv4/server4 as the server at the other end of a veth pair.
//
// # Goroutines
//
// Up starts one goroutine in DHCP mode, through safe.Go, which recovers and
// logs panics: PID 1 must never die. If the lease loop itself panics, it is
// restarted after a pause. nclient4 runs one receive goroutine of its own per
// client, which this package cannot guard.
package netup
