package rootfs

// Well-known paths on the appliance.
const (
	// ConfigDir holds the configuration mkimage bakes into the initramfs.
	ConfigDir = "/etc/allium"
	// NodeConfigFile is the baked NodeConfig, as JSON.
	NodeConfigFile = ConfigDir + "/node.json"
	// NodeKeyFile is the node's ed25519 TLS key (PKCS#8 PEM).
	NodeKeyFile = ConfigDir + "/node.key"
	// AuthorizedKeysFile lists the client keys baked in at build time,
	// one "ed25519:BASE64 NAME" per line.
	AuthorizedKeysFile = ConfigDir + "/authorized_keys"
	// OnionKeyFile is the onion service's ed25519 key (PKCS#8 PEM of
	// its seed, as hiddenservice.MarshalKey writes it), from which the
	// node's .onion address comes.
	OnionKeyFile = ConfigDir + "/onion.key"
	// ModulesOrderFile lists the kernel modules to load, dependencies
	// first, as written by WriteModuleOrder.
	ModulesOrderFile = ConfigDir + "/modules.order"

	// DataDir is the data root: state.db, images, containers, logs.
	DataDir = "/var/lib/allium"
	// StateFile is the bbolt database below DataDir.
	StateFile = DataDir + "/state.db"

	// Socket is the API's unix socket, for root on the node only.
	Socket = "/run/allium.sock"
	// ResolvConf is where the network configuration writes DNS servers.
	ResolvConf = "/etc/resolv.conf"

	// DefaultPort is the API's TCP port, and the onion service's
	// virtual port.
	DefaultPort = 7707
	// TorExe is where the appliance keeps the tor binary; its shared
	// libraries sit at their build-host paths.
	TorExe = "/usr/sbin/tor"
	// TorUser is the unprivileged user tor switches to on the
	// appliance; mkimage writes it into /etc/passwd.
	TorUser = "allium-tor"
	// TorUID is TorUser's uid and gid.
	TorUID = 990
	// TorDataDir is tor's DataDirectory, below DataDir so that tor's
	// state survives reboots.
	TorDataDir = DataDir + "/tor"
	// DataLabel is the ext4 label mkimage gives the data disk, and the
	// default the kernel command line names with allium.data=LABEL=.
	DataLabel = "allium-data"
)
