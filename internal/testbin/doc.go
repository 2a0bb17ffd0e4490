// Package testbin finds Allium's binaries for tests and benchmarks that
// run them as the user would: $ALLIUM_BIN/NAME when make sets it (the
// binaries `make build` made), else a fresh static build of allium/NAME.
package testbin
