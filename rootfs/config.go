package rootfs

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
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
	// Isolation is the default for allium.isolation= when the kernel
	// command line has none: the highest rung of the isolation ladder
	// containers may use ("chroot", "namespaces", "userns",
	// "cgroups"). An OS container's only way to set it, since the
	// kernel command line is its host's. Empty means no ceiling.
	Isolation string `json:"isolation,omitempty"`
	// Tor configures the onion service.
	Tor TorConfig `json:"tor,omitzero"`
	// Connections caps the API's connections on TCP and on the onion;
	// its zero value is the defaults.
	Connections ConnConfig `json:"connections,omitzero"`
	// Built is when mkimage built the image. A node whose clock reads
	// earlier than this at boot sets it to Built, because tor refuses
	// to work with a clock that is far off.
	Built time.Time `json:"built,omitzero"`
}

// TorConfig is the onion service's part of NodeConfig.
type TorConfig struct {
	// Off runs no tor: the node serves only TCP and the unix socket.
	Off bool `json:"off,omitempty"`
	// Exe is the tor binary; empty means TorExe.
	Exe string `json:"exe,omitempty"`
	// User is who tor runs as; empty means TorUser. It must be in the
	// node's /etc/passwd.
	User string `json:"user,omitempty"`
	// Port is the onion service's virtual port; 0 means DefaultPort.
	Port int `json:"port,omitempty"`
	// Torrc lines are appended to the generated torrc, for bridges or
	// a private test network; nil means none.
	Torrc []string `json:"torrc,omitempty"`
}

// ConnConfig is the API's connection caps (README, "Security model"),
// for each TLS listener (TCP, onion) apart. The unix socket has none.
type ConnConfig struct {
	// Max caps the open connections; 0 means 256.
	Max int `json:"max,omitempty"`
	// Reserved of them only authorized client keys keep; 0 means 32.
	Reserved int `json:"reserved,omitempty"`
	// PerSource caps the TCP connections not yet authorized from one
	// address (IPv6: one /64); 0 means 16. The onion has its own
	// (OnionStreams).
	PerSource int `json:"per_source,omitempty"`
	// Handshakes caps, during a flood (a quarter of the connections or
	// more not yet authorized), the TLS handshakes a second one such address may
	// start (four times as many at once); 0 means 10.
	Handshakes int `json:"handshakes,omitempty"`
	// OnionStreams caps the streams of one client's tor circuit; 0
	// means 32.
	OnionStreams int `json:"onion_streams,omitempty"`
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
	if c.Tor.Port < 0 || c.Tor.Port > 65535 {
		return NodeConfig{}, fmt.Errorf("node config: tor.port %d: out of range (0 = default)", c.Tor.Port)
	}
	if k := c.Connections; k.Max < 0 || k.Reserved < 0 || k.PerSource < 0 || k.Handshakes < 0 || k.OnionStreams < 0 || k.OnionStreams > 65535 {
		return NodeConfig{}, fmt.Errorf("node config: connections %+v: a cap may not be negative (0 = default)", k)
	}
	for _, l := range c.Tor.Torrc {
		if strings.ContainsAny(l, "\r\n") {
			return NodeConfig{}, fmt.Errorf("node config: tor.torrc line %q: a line may not hold a line break", l)
		}
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

// TorExe returns the tor binary to run.
func (c NodeConfig) TorExe() string { return or(c.Tor.Exe, TorExe) }

// TorUser returns the user tor runs as.
func (c NodeConfig) TorUser() string { return or(c.Tor.User, TorUser) }

// OnionPort returns the onion service's virtual port.
func (c NodeConfig) OnionPort() int {
	if c.Tor.Port == 0 {
		return DefaultPort
	}
	return c.Tor.Port
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
