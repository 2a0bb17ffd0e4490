// Package hiddenservice makes the node's control API a Tor v3 onion
// service that only authorized clients can even find.
//
// It owns:
//   - the onion service key: a persistent ed25519 key, stored as its
//     32-byte seed (MarshalKey, PKCS#8 PEM), from which come the
//     64-byte expanded key tor takes (ExpandedKey, KeyBlob) and the
//     address (Address: base32 of key, checksum and version);
//   - v3 client authorization keys (x25519, crypto/ecdh) in the three
//     spellings tor uses: base32 for ClientAuthV3 and .auth_private
//     files, base64 for ONION_CLIENT_AUTH_ADD;
//   - the node tor's torrc (Config.Torrc) and command line
//     (Process.Command), both pure;
//   - the control connection (Controller), publication (Service: raw
//     ADD_ONION with ClientAuthV3, the wait for HS_DESC UPLOADED,
//     client list updates) and the supervision of the tor process
//     (Process: restart under the containers' restart policy,
//     restart.Policy, with tor's parameters in TorPolicy; republish;
//     Status for `cloud info`);
//   - the client side `cloud` needs: .auth_private files
//     (WriteAuthPrivate), ONION_CLIENT_AUTH_ADD (Controller.AddClientAuth,
//     which accepts tor's 251 and 252), and a SOCKS5 dialer whose
//     errors say why an onion is unreachable (SOCKSDialer, SOCKSError,
//     MapSOCKSError for golang.org/x/net/proxy).
//
// It does not own: the API's listener and TLS (package api: PID 1 runs
// a listener on 127.0.0.1 and passes its address as Onion.Target), the
// reaper (PID 1 passes it as Options.Starter, a child.Starter), the
// restart policy (supervisor/restart), the tor binary
// and the tor user's /etc/passwd entry in the image (mkimage, rootfs),
// where keys are stored (PID 1 and mkimage), or the private test
// network (internal/tornet, used by tests only).
//
// # Processes
//
//	PID 1 ──Options.Starter(tor -f /run/allium-tor/torrc)─> tor (root, then User)
//	  │                                                     │ opens /run/allium-tor/control
//	  │<──────────── unix socket, SAFECOOKIE ───────────────┤ (cookie in DataDir)
//	  ├─ SETEVENTS STATUS_CLIENT STATUS_GENERAL HS_DESC ───>│
//	  ├─ DEL_ONION, CLOSECIRCUIT (old rendezvous) ─────────>│
//	  ├─ ADD_ONION ED25519-V3:… Flags=Detach,V3Auth ───────>│
//	  │<──────────── 650 HS_DESC UPLOADED ──────────────────┤ descriptor on an HSDir
//	  ├─ GETINFO status/bootstrap-phase (every second) ────>│
//	  │<──────────── exit status (from the reaper) ─────────┤ died: restart, publish again
//
// tor runs in its own session with HOME in its DataDir and no other
// environment, reads only the generated torrc (--defaults-torrc
// /dev/null), loads no GeoIP files (an idle service tor measured
// 13.4 MB RSS here), has no SOCKS port, and switches to Config.User
// itself after opening its control socket. With User set, tor opens
// the control socket only after switching user, so the socket's
// directory must belong to that user (Process.Prepare sees to it); and
// with DisableNetwork 1 it was seen not to open it at all.
//
// # Why bine, and what it lacks
//
// github.com/cretz/bine v0.2.0 is the chosen control-port library: its
// control package speaks the protocol (replies, SAFECOOKIE
// authentication, event parsing) and is small. Against tor 0.4.9 it
// lacks, and this package works around:
//   - v3 client authorization: ListenConf.ClientAuths sends flag
//     BasicAuth (tor: 512), AddOnionRequest.ClientAuths sends the v2
//     ClientAuth keyword (tor 0.4.9 hits a bug and never answers), so
//     ADD_ONION is formatted here (AddOnionCommand) and sent raw;
//   - non-250 successes: ONION_CLIENT_AUTH_ADD answers 251 or 252 on
//     success, which bine's SendRequest reports as errors;
//   - goroutines: EventWait and HandleEvents start goroutines that do
//     not recover panics and outlive their call; Controller reads
//     events on the caller's goroutine instead (NextEvent), with
//     deadlines on the connection, and registers no bine listener
//     (bine's listener channels block when full);
//   - quoted status values: bine's ParseStatusEvent splits
//     SUMMARY="Loading relay descriptors" at its spaces
//     (ParseBootstrap does not).
//
// bine's tor and process packages (tor.Start, Listen) are not used: PID
// 1 starts tor through its reaper, never with exec.Cmd.Wait.
//
// # Behaviour worth knowing
//
// DEL_ONION leaves the onion's rendezvous circuits open, and once the
// same key is added again they keep serving: a client removed from the
// list would keep access through its open circuit. Publish therefore
// closes them (CLOSECIRCUIT) between DEL_ONION and ADD_ONION.
//
// After the service's circuits are torn down (tor restarted, or the
// client list updated), a client tor that cached the old descriptor
// sometimes gets an introduction acknowledged and then waits for a
// rendezvous that never comes, attaching every new stream to that dead
// circuit until NEWNYM (seen in about one test run in four, for up to
// 90 s). A client should treat a timeout to an onion as a cue to send
// NEWNYM and retry; NEWNYM also drops client keys added without
// ClientAuthOptions.Permanent.
package hiddenservice
