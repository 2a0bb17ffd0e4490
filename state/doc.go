// Package state is the node's persistent state: the bbolt schema, typed
// accessors, and recovery from a database that will not open. It is the
// only package that imports bbolt.
//
// Every write is one fsync'd transaction, and every open has a lock
// timeout. state knows nothing of HTTP, tor or the supervisor.
package state
