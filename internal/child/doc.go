// Package child is the one way PID 1 starts a process and gets its wait
// status: through a Starter, which in PID 1 is the reaper (init), the
// node's one caller of wait4. The supervisor (container shims), the
// image store (the unpack helper) and hiddenservice (tor) all start
// their children with Start, so none of them can become a second
// waiter: there is no fallback to exec.Cmd.Wait.
//
// Tests stand in for the reaper with internal/testkit's Starter.
package child
