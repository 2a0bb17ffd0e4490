// Package keyfile owns the one stored form of Allium's ed25519 private
// keys: PKCS#8 in a PEM "PRIVATE KEY" block. The node's TLS key, the
// client's key and the onion service's key are all written this way,
// by mkimage and at first boot, and read back by PID 1 and the cloud
// CLI.
//
// It turns keys into bytes and back, nothing more: it does not make
// keys, read or write files, or say what a key is for (api and
// hiddenservice do, and name the key in their errors). Standard
// library only.
package keyfile
