package network

import (
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The node's nftables rules are one table of its own, "ip allium",
// rewritten whole in one atomic batch whenever a container is attached
// or removed (apply): no other table is touched, and a half-written
// state is never visible. Conntrack keeps the NAT of connections already
// made, so rewriting the table does not break them. In nft's syntax,
// for bridge allium0 and range 10.89.0.0/24:
//
//	table ip allium {
//	  chain prerouting  { type nat hook prerouting priority dstnat;
//	                      fib daddr type local jump ports }
//	  chain output      { type nat hook output priority dstnat;
//	                      fib daddr type local ip daddr != 127.0.0.0/8 jump ports }
//	  chain ports       { tcp dport 80 dnat to 10.89.0.2:80     # one per published port
//	                      udp dport 53 dnat to 10.89.0.3:53 }
//	  chain postrouting { type nat hook postrouting priority srcnat;
//	                      ip saddr 10.89.0.0/24 oifname != "allium0" masquerade }
//	  chain forward     { type filter hook forward priority filter; policy accept;
//	                      oifname "allium0" iifname "allium0" accept
//	                      oifname "allium0" ct state established,related accept
//	                      oifname "allium0" ct status dnat accept
//	                      oifname "allium0" drop }
//	}
//
// "fib daddr type local" is every address of the node, whichever
// interface has it and however it changes (DHCP): a published port is
// on all of them. Loopback is left out of output's DNAT: a packet from
// 127.0.0.1 may not leave lo (route_localnet). The forward chain keeps
// the node's neighbours from routing into the range: only replies and
// published ports get in.

// tableName is the node's nftables table, family ip.
const tableName = "allium"

// chainSpec is a chain of the table: a base chain when hook is set.
type chainSpec struct {
	name   string
	typ    nftables.ChainType
	hook   *nftables.ChainHook
	prio   *nftables.ChainPriority
	policy *nftables.ChainPolicy
}

// ruleSpec is one rule of a chain.
type ruleSpec struct {
	chain string
	exprs []expr.Any
}

var accept = nftables.ChainPolicyAccept

// chains are the table's chains, in the order they are added.
var chains = []chainSpec{
	{name: "ports"},
	{name: "prerouting", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookPrerouting, prio: nftables.ChainPriorityNATDest},
	{name: "output", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookOutput, prio: nftables.ChainPriorityNATDest},
	{name: "postrouting", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookPostrouting, prio: nftables.ChainPriorityNATSource},
	{name: "forward", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookForward, prio: nftables.ChainPriorityFilter, policy: &accept},
}

// ruleset is every rule of the table for the bridge br, the range r and
// the published ports of pubs (sorted by name). It is pure.
func ruleset(br string, r netip.Prefix, pubs []Publish) []ruleSpec {
	local := []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
	out := []ruleSpec{
		{"prerouting", cat(local, jump("ports"))},
		{"output", cat(local, notIn(16, netip.MustParsePrefix("127.0.0.0/8")), jump("ports"))},
		{"postrouting", cat(in(12, r), ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, br), []expr.Any{&expr.Masq{}})},
		{"forward", cat(ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, br), ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, br), verdict(expr.VerdictAccept))},
		{"forward", cat(ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, br), ctHas(expr.CtKeySTATE, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), verdict(expr.VerdictAccept))},
		{"forward", cat(ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, br), ctHas(expr.CtKeySTATUS, ipsDstNAT), verdict(expr.VerdictAccept))},
		{"forward", cat(ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, br), verdict(expr.VerdictDrop))},
	}
	for _, p := range pubs {
		for _, port := range p.Ports {
			out = append(out, ruleSpec{"ports", dnat(port, p.Addr)})
		}
	}
	return out
}

// ipsDstNAT is IPS_DST_NAT of a conntrack entry's status: the
// connection was DNATed (a published port).
const ipsDstNAT = 1 << 5

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func jump(chain string) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chain}}
}

func verdict(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

// ifname compares the input or output interface's name.
func ifname(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: op, Register: 1, Data: b}}
}

// in matches an IPv4 address at offset (12 source, 16 destination) of
// the IP header that is in p; notIn one that is not.
func in(offset uint32, p netip.Prefix) []expr.Any    { return prefixCmp(offset, p, expr.CmpOpEq) }
func notIn(offset uint32, p netip.Prefix) []expr.Any { return prefixCmp(offset, p, expr.CmpOpNeq) }

func prefixCmp(offset uint32, p netip.Prefix, op expr.CmpOp) []expr.Any {
	m := ^uint32(0) << (32 - p.Bits())
	net := p.Masked().Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.BigEndian.PutUint32(m), Xor: make([]byte, 4)},
		&expr.Cmp{Op: op, Register: 1, Data: net[:]},
	}
}

// ctHas matches a conntrack entry whose key (state or status) has any
// of bits.
func ctHas(key expr.CtKey, bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: key},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// dnat sends port to the same port of addr.
func dnat(port Port, addr netip.Addr) []expr.Any {
	proto := byte(unix.IPPROTO_TCP)
	if port.proto() == "udp" {
		proto = unix.IPPROTO_UDP
	}
	a := addr.As4()
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port.Port)},
		&expr.Immediate{Register: 1, Data: a[:]},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(port.Port)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}

// writeTable replaces the table with rules in one batch on conn: add
// (so that the delete finds it), delete, add again with its chains and
// rules; Flush sends it.
func writeTable(conn *nftables.Conn, rules []ruleSpec) error {
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: tableName}
	conn.AddTable(t)
	conn.DelTable(t)
	conn.AddTable(t)
	byName := map[string]*nftables.Chain{}
	for _, c := range chains {
		byName[c.name] = conn.AddChain(&nftables.Chain{Name: c.name, Table: t, Type: c.typ, Hooknum: c.hook, Priority: c.prio, Policy: c.policy})
	}
	for _, r := range rules {
		conn.AddRule(&nftables.Rule{Table: t, Chain: byName[r.chain], Exprs: r.exprs})
	}
	return conn.Flush()
}

// deleteTable removes the table, if there is one.
func deleteTable(conn *nftables.Conn) error {
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: tableName}
	conn.AddTable(t)
	conn.DelTable(t)
	return conn.Flush()
}
