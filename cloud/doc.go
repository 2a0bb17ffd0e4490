// Command cloud drives Allium nodes from an operator's machine:
//
//	cloud start HOST FILE             push an image (resumably) and run it; wait until it runs
//	cloud stop HOST NAME|FILE         stop a container (foo.txz and foo both name foo)
//	cloud restart HOST NAME|FILE      restart it
//	cloud rm HOST NAME|FILE           stop and remove it (volumes stay)
//	cloud ps [-w] HOST                containers: state, pid, uptime, restarts, last exit, image
//	                                  (-w: and address, CPU, memory, pids, I/O, as cloud stats)
//	cloud logs [-f] [--tail N] HOST NAME|FILE
//	cloud images HOST                 images on the node
//	cloud rmi HOST DIGEST|NAME        remove an image
//	cloud events [-f] HOST            what happened to containers and images
//	cloud nodes                       list the aliases in the config dir
//	cloud info HOST                   identity, uptime, persistence, memory, warnings
//	cloud reboot HOST                 ask the node to reboot
//	cloud poweroff HOST               ask the node to power off
//
// HOST is an alias name (DIR/nodes/NAME.json, saved by mkimage) or
// ADDRESS:PORT with --node-key ed25519:BASE64. Given both an alias and
// --node-key, the flag wins: that is how an operator reaches a node that
// was rebuilt with a new key before its alias is updated.
//
// # What it owns
//
// The command line: parsing, the human views of what the node answers,
// --json (the node's own JSON, indented), and turning failures into
// sentences that say what was wrong and what to do, naming the node: an
// unreachable port, a node presenting another key than the one pinned,
// a client key the node does not authorize, an unknown alias, a missing
// client key. Exit codes are 0 ok, 1 failure, 2 usage.
//
// For start, it also owns reading an image file before anything is
// sent: identifying its compression (mholt/archives), checking its
// first entries with the layout rule the node applies too
// (manifest.Layout: manifest.json first), validating the manifest with
// manifest.Parse, and its sha256 digest. The upload
// protocol and its resumption are api.Client.Upload's; cloud shows them
// (a progress bar on a terminal, a summary line otherwise).
//
// It does not own the wire types, the TLS pinning, the HTTP client or
// the config directory's layout: those are package api's, shared with
// the node and mkimage. cloud only reads the config directory; mkimage
// writes it.
//
// # Time limits
//
// --timeout bounds a whole command that only asks and answers (info,
// ps, images...). A command that may rightly take longer (start's
// upload and wait, a followed log or event stream, stop's wait) is
// bounded per request instead; an upload counts as stalled when the
// connection has taken no bytes for --timeout, and then resumes.
// start, restart and stop wait up to --wait (60s) for the container.
//
// # Shape
//
// main is one line around run(ctx, args, stdin, stdout, stderr), which
// builds the whole command tree afresh on each call, with no globals, so
// tests run the CLI in-process against a real api.Server on a loopback
// TLS listener.
//
// cloud runs on the operator's machine, Linux or macOS, amd64 or arm64
// (make dist builds all four). The one Linux-only piece is the parent
// death signal of its own tor (tor_own_linux.go); elsewhere that tor
// still ends with cloud (tor_own_other.go). The tests that run tor, or
// use tornet's fake control port, are Linux-only (*_linux_test.go).
//
// # Why cobra
//
// The command set will grow to a dozen verbs (start, stop, logs -f,
// images, keys, update...) with per-command flags, help with examples,
// and shell completion of alias names. cobra gives all of that, and
// kubectl, gh and docker have taught operators its conventions. The cost
// is one dependency (with pflag), which the static node binary does not
// import. Errors stay ours: cobra's printing is silenced and run maps
// errors to exit codes with internal/cli, as mkimage does, counting
// anything cobra rejects by itself (a bad flag, a wrong argument count,
// an unknown command) as usage.
//
// # Not yet
//
// Reaching a node over its onion service needs a SOCKS dialer to tor;
// for now cloud dials ADDRESS:PORT directly. Docker and OCI archives are
// recognized and refused with a pointer to a converter, not converted.
package main
