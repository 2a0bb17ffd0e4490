package rootfs

import (
	"encoding/json"
	"fmt"
	"strings"
)

// NodeConfig is the configuration mkimage bakes into NodeConfigFile.
// Anything the API changes at run time lives in state.db instead.
type NodeConfig struct {
	// Name is the node's name, shown by `cloud info`. Required.
	Name string `json:"name"`
	// Port is the API's TCP port. Zero means DefaultPort; -1 switches
	// the TCP listener off.
	Port int `json:"port,omitempty"`
	// Data is the default for allium.data= when the kernel command line
	// has none: "LABEL=…", "UUID=…", a device, or a directory. Empty
	// means tmpfs in a VM and DataDir on the root filesystem in an OS
	// container.
	Data string `json:"data,omitempty"`
}

// ParseNodeConfig decodes and validates a NodeConfig. Unknown fields are
// an error, so a typo in a hand-edited file is not silently ignored.
func ParseNodeConfig(b []byte) (NodeConfig, error) {
	var c NodeConfig
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return NodeConfig{}, fmt.Errorf("node config: %w", err)
	}
	if c.Name == "" {
		return NodeConfig{}, fmt.Errorf("node config: name is empty")
	}
	if c.Port < -1 || c.Port > 65535 {
		return NodeConfig{}, fmt.Errorf("node config: port %d: out of range (0 = default, -1 = off)", c.Port)
	}
	return c, nil
}

// ListenPort returns the TCP port to listen on, or 0 when TCP is off.
func (c NodeConfig) ListenPort() int {
	switch c.Port {
	case 0:
		return DefaultPort
	case -1:
		return 0
	}
	return c.Port
}
