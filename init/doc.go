// Command init is Allium's /sbin/init: PID 1 of a VPS kernel or of an OS
// container. It mounts the early filesystems, loads the kernel modules
// mkimage chose, brings up the network, mounts the data partition, opens
// the state database and serves the API, and then waits: it reaps every
// child and orphan, catches every signal, and shuts down in order.
//
// init is boot and wiring. It keeps the boot sequence, the reaper (the
// one caller of wait4, which every part starts its children through as
// a child.Starter), signals, the shutdown, the listeners and the onion;
// the node's images and containers are package init/apps, the network
// bring-up is init/netup. The machine sits behind small seams, one per
// concern (kernel.go: mounter, moduleLoader, processes, power, clock).
//
// PID 1 must never exit and never panic (the kernel panics if it does):
// every goroutine runs under safe.Go, a panicking API handler costs one
// request, and after boot errors are logged, never fatal.
//
// The same binary plays other roles when invoked under another name or
// with a role word:
//   - "halt", "poweroff", "reboot", "shutdown", "telinit", and "init 0",
//     "init 6" ask PID 1 to power off or reboot (power.go): the kernel
//     runs /sbin/poweroff on a Xen shutdown request, OpenVZ's vzctl runs
//     halt (or init 0) and reboot inside the container. As PID 1 it
//     boots whatever its arguments (OpenVZ's `init -z "      "`);
//   - "init unpack" unpacks one upload, chrooted into a staging
//     directory (imagestore.HelperMain);
//   - "init shim" sets a container up and execs its workload
//     (supervisor.ShimMain).
//
// Dependencies, and why each is here:
//   - golang.org/x/sys/unix: mount, reboot, wait4, finit_module.
//   - go.etcd.io/bbolt (through state): the node's state.
//   - github.com/vishvananda/netlink and github.com/insomniacslk/dhcp
//     (through init/netup): links, addresses, routes, and DHCPv4.
//     netlink also makes the private networks' bridge and veth pairs
//     (through supervisor/network).
//   - github.com/google/nftables, over github.com/mdlayher/netlink
//     (through supervisor/network): the private networks' NAT and
//     published ports, in one table of the node's own, without an nft
//     binary in the initramfs.
//   - github.com/mholt/archives (through imagestore): the unpack helper
//     reads every compression it identifies. It registers all its
//     formats, so its decoders link in whether used or not: about 3 MB
//     of the binary.
//   - github.com/cretz/bine's control package (through hiddenservice):
//     tor's control protocol, to publish the onion and watch tor; its
//     torutil brings golang.org/x/crypto's ed25519 and sha3 along.
//
// Nothing else outside the standard library; a test guards the list.
package main
