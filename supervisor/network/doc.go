// Package network is the node's side of private networks
// (isolation.network: private): one bridge, an address range, the veth
// pair of each run, and one nftables table for NAT and published ports.
//
// It owns:
//   - the range and its addresses: ParseRange, Gateway (the bridge's
//     address), Next (a pure allocator: given the addresses in use, the
//     lowest free one), MAC (an interface's hardware address, derived
//     from its IPv4 address), HostLink (the node end's name);
//   - the bridge (Network.Setup): allium0 with the range's first address,
//     up; IPv4 forwarding on; a veth pair made and deleted, so that a
//     kernel without veth is found before a container needs one;
//   - a run's attachment (Network.Attach, the supervisor's Network): a
//     veth pair whose node end is on the bridge and whose other end is
//     eth0 in the run's network namespace (created there directly), with
//     the container's address, lo up, and a default route through the
//     bridge;
//   - the rules: one table of the node's own, "ip allium" (rules_linux.go
//     has it in nft's syntax), rewritten whole in one atomic batch at
//     each attach and removal: masquerade of the range out of any
//     interface but the bridge, DNAT of each published port on every
//     local address (prerouting, and output so that the node itself
//     reaches it), and a forward filter that lets into the range only
//     replies and published ports.
//
// It does not start processes (the supervisor does, with CLONE_NEWNET,
// and calls Attach between the shim's start and the workload's), reads
// no manifest and knows no bbolt: init/apps chooses a container's
// address with Next, keeps it in state.db, and tells the Network
// (Add, Remove) which container has which address and ports.
//
// Choices, and why:
//   - 10.89.0.0/24 by default: private (RFC 1918), next to but not on
//     Podman's 10.88.0.0/16 and away from Docker's 172.17.0.0/16, which a
//     node may share a machine or a VPN with, and rarely a VPS
//     provider's own internal range. A /24 holds 253 containers, more
//     than a small VPS runs. allium.bridge= on the kernel command line
//     picks another where it clashes.
//   - One address per container for its life, not per run: a published
//     port's DNAT, and any peer that knows the address, stay right across
//     restarts. The netns dies with the shim's pid namespace, so each run
//     gets a new veth pair; its MAC is derived from the address (and the
//     bridge's is fixed), so no ARP cache holds a dead one.
//   - The whole table rewritten, not rules added and deleted one by one:
//     the rule set is a pure function of the attached containers
//     (ruleset), idempotent by construction, and conntrack keeps the NAT
//     of connections already made.
//   - "fib daddr type local" for published ports, not a list of the
//     node's addresses, which DHCP may change: a port is published on
//     whatever addresses the node has. Loopback is left out (a packet
//     from 127.0.0.1 may not be routed to the bridge).
//   - The forward filter: with forwarding on, a neighbour on the
//     provider's network could route into the range; only replies
//     (conntrack) and published ports (DNAT) get through.
//   - No hairpin: a container reaching another through the node's
//     published port gets its reply from the wrong address. Containers
//     reach each other by address.
//   - IPv4 only, for now.
//
// Kernel needs: network namespaces, bridge, veth, nf_tables with
// nft_chain_nat, nft_nat, nft_masq, nft_fib_ipv4 and nft_ct (rootfs
// loads them as late modules where they are modules).
package network
