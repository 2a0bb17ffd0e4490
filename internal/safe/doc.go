// Package safe is PID 1's one way to run code that must not take the
// process down: a panic in PID 1 panics the kernel. Every goroutine that
// init, the supervisor, netup and hiddenservice start goes through Go.
package safe
