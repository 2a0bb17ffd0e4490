package main

// keysChanged is called after the authorized keys in state.db change:
// the onion service republishes with the new client list, so a removed
// client loses the onion at the same time as its TLS key stops working.
func (n *node) keysChanged() {
	// Filled in by the tor wiring.
}
