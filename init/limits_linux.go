package main

import (
	"time"

	"allium/api"
	"allium/supervisor"
)

// What a flood of connections may take of the node (issue 10): init
// raises its open-file limit to what the kernel allows, and the API's
// TLS listeners stop admitting connections well before it, keeping a
// reserve of descriptors for init's own work (container starts, logs,
// uploads, state.db) and for the unix socket.
//
// The onion's connections all reach its loopback listener from tor, so
// a cap per source address would lump every onion client into one. The
// onion is capped instead per tor circuit, which is one client's
// session, by tor itself (ADD_ONION MaxStreams, which closes the
// circuit of a client that opens more), and overall by its own gate,
// apart from TCP's so that a flood on the TCP port never takes the
// onion's slots. Strangers hardly reach it: without an authorized
// x25519 key a client cannot even fetch the onion's descriptor.

// fdReserve is how many of init's open files the TLS listeners leave to
// the rest of init: an eighth of the limit, at least 1024, at most half.
func fdReserve(nofile uint64) uint64 { return min(max(1024, nofile/8), nofile/2) }

// defaultOnionStreams is the onion's cap per tor circuit.
const defaultOnionStreams = 32

// raiseOpenFiles raises init's soft open-file limit to its hard limit
// (RaiseHardLimits made that fs.nr_open) and records it.
func (n *node) raiseOpenFiles() {
	nofile, err := supervisor.RaiseOpenFiles()
	if err != nil {
		n.log.Warn("rlimits: open files stay at the limit init started with", "limit", nofile, "err", err)
	}
	n.nofile = nofile
	if nofile > 0 {
		n.log.Info("open files", "limit", nofile, "kept_for_init", fdReserve(nofile))
	}
}

// apiLimits are the caps of the TCP and onion listeners: node.json's
// (zero fields: api's defaults), and no descriptor in init's reserve.
func (n *node) apiLimits() (tcp, onion api.Limits) {
	k := n.cfg.Connections
	tcp = api.Limits{Conns: k.Max, Reserved: k.Reserved, PerSource: k.PerSource, Handshakes: k.Handshakes}
	if n.nofile > 0 {
		tcp.MaxFD = int(n.nofile - fdReserve(n.nofile))
	}
	onion = tcp
	onion.PerSource = -1 // all from tor on loopback; tor caps each circuit
	// A handshake over a fresh onion circuit may take up to a minute
	// (api.NewClientDialer).
	onion.Stranger = time.Minute
	return tcp, onion
}

// onionStreams is the onion's cap per tor circuit.
func (n *node) onionStreams() int {
	if s := n.cfg.Connections.OnionStreams; s > 0 {
		return s
	}
	return defaultOnionStreams
}
