// Package restart is Allium's one restart policy, for containers and
// for tor alike: Policy.Decide is a pure function from (history, how
// long the run lasted, how it ended, now) to (what to do, after how
// long, the new history), with the node's defaults (1 s doubling to
// 5 min, ±20% jitter, reset after 60 s, a crashloop after 10 failures in
// 10 min that retries every 30 min, exit 125 means "do not restart me").
//
// It also owns Exit, the one description of a wait status ("exit 1",
// "killed by SIGKILL"), which the supervisor records, PID 1's reaper
// logs for orphans and hiddenservice shows for tor.
//
// It reads no clock and starts nothing: the supervisor (containers) and
// hiddenservice (tor, with TorPolicy's parameters) act on its answers.
// It imports only the standard library, x/sys/unix (for WaitStatus) and
// the manifest, so that it builds wherever cloud does.
package restart
