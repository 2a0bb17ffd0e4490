package api

import "time"

// Wire types of the node itself:
//
//	GET  /v1/node                   Node
//	POST /v1/node/reboot|poweroff   202 + Accepted, before the node goes down;
//	                                409 "unavailable" when it cannot start to
//	POST /v1/node/uninstall         202 + Accepted (what the node did, then it
//	                                reboots into the system it was installed
//	                                over); 409 "unavailable" when it was not
//	                                installed over one, or cannot undo it
//	PUT  /v1/node/tcp               TCPRequest: 200 + TCPState; 409
//	                                "would_lock_out" when switching TCP off from
//	                                a TCP connection would leave no way in

// Environment values of Node.Environment.
const (
	EnvVM        = "vm"        // PID 1 of a kernel: KVM, Xen, QEMU
	EnvContainer = "container" // PID 1 of an OS container such as OpenVZ
)

// Node is GET /v1/node.
type Node struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Kernel is the running kernel's release (uname -r).
	Kernel        string  `json:"kernel"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	// BootCount counts boots that opened this node's state.db,
	// this one included.
	BootCount   uint64 `json:"boot_count"`
	Environment string `json:"environment"`
	// Install says how install.sh put the node on this machine, and so
	// what `cloud uninstall` does: "kexec" (a trial: the next reboot
	// brings the old system back), "grub" (the default GRUB entry), or
	// "takeover" (an OS container's /sbin/init); "" when it was not
	// installed over another system.
	Install string `json:"install,omitempty"`
	// Persistent is false when the data root is a tmpfs and nothing
	// survives a reboot.
	Persistent bool `json:"persistent"`
	// Data says where the data root lives, e.g. "/dev/vda (LABEL=allium-data)".
	Data   string `json:"data"`
	Memory Memory `json:"memory"`
	// Disk is the data root's filesystem; nil when it cannot be read.
	Disk *Disk `json:"disk,omitempty"`
	// Cgroup is what the node's own processes use in their cgroup, and
	// the memory kept for them; nil where the node has no cgroups.
	Cgroup *NodeCgroup `json:"cgroup,omitempty"`
	// TCP is the address the TLS port listens on, such as ":7707", or
	// "off".
	TCP string `json:"tcp,omitempty"`
	// Tor is the onion service's state; nil when the node runs no tor.
	Tor *Tor `json:"tor,omitempty"`
	// Isolation is what the node's isolation probe found at boot; nil
	// before it has run.
	Isolation *Isolation `json:"isolation,omitempty"`
	// Update is what the node knows of updating its init in place
	// (update.go); nil from a node that takes no new inits.
	Update *Update `json:"update,omitempty"`
	// Warnings are the things an operator should know about, in words.
	Warnings []string `json:"warnings,omitempty"`
}

// Tor is the state of the node's tor and its onion service.
type Tor struct {
	// State is one of starting, connecting, publishing, running,
	// backoff, crashloop, stopped, or "missing" when there is no tor
	// binary.
	State string    `json:"state"`
	Since time.Time `json:"since"`
	// Onion is the service's address, ID.onion:PORT.
	Onion string `json:"onion,omitempty"`
	// Published is true once the service's descriptor reached the
	// network.
	Published   bool      `json:"published"`
	PublishedAt time.Time `json:"published_at,omitzero"`
	// Bootstrap is tor's progress joining the network, in percent.
	Bootstrap        int    `json:"bootstrap"`
	BootstrapSummary string `json:"bootstrap_summary,omitempty"`
	PID              int    `json:"pid,omitempty"`
	// Restarts counts the times tor was started again after it ended.
	Restarts  int       `json:"restarts"`
	NextStart time.Time `json:"next_start,omitzero"`
	LastExit  string    `json:"last_exit,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	ClockSkew string    `json:"clock_skew,omitempty"`
	// RSS is tor's resident set, in bytes; 0 when it is not running.
	RSS uint64 `json:"rss,omitempty"`
}

// Isolation is the node's isolation ladder: the highest rung its kernel
// allows (chroot, namespaces, userns, cgroups), why each higher one is
// missing, and every check the probe made.
type Isolation struct {
	// Highest is the highest rung the node's kernel allows.
	Highest string `json:"highest"`
	// Containers is the rung containers get here: Highest, or lower
	// where this build's supervisor goes no higher.
	Containers string `json:"containers"`
	// Limited is true when containers get cgroup limits (at any rung).
	Limited bool `json:"limited"`
	// Missing maps each rung above Highest to why it is missing:
	// "userns": "user: user.max_user_namespaces=0".
	Missing map[string]string `json:"missing,omitempty"`
	// Unprotected says what a container here (at Containers, Limited or
	// not) is not protected from; "" when nothing is missing.
	Unprotected string `json:"unprotected,omitempty"`
	// Cgroup is the cgroup hierarchy: "v2", "v1" or "".
	Cgroup string           `json:"cgroup,omitempty"`
	Checks []IsolationCheck `json:"checks"`
}

// IsolationCheck is one thing the probe tried: a namespace kind,
// pivot_root, overlayfs, a cgroup controller, nftables.
type IsolationCheck struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	Why  string `json:"why,omitempty"`
}

// Memory is the node's memory, in bytes.
type Memory struct {
	Total     uint64 `json:"total"`
	Available uint64 `json:"available"`
	// InitRSS is the resident set of PID 1 itself.
	InitRSS uint64 `json:"init_rss"`
}

// Disk is the space of the filesystem of the node's data root, in
// bytes, and its inodes.
type Disk struct {
	Total int64 `json:"total"`
	// Free is what containers and uploads may still write (statfs
	// f_bavail).
	Free int64 `json:"free"`
	// Files and FilesFree count inodes; 0 where the filesystem has no
	// fixed number.
	Files     uint64 `json:"files"`
	FilesFree uint64 `json:"files_free"`
	// Uploading is what the uploads in flight have been promised and
	// not yet written.
	Uploading int64 `json:"uploading"`
	// Floor is what uploads and images leave free, for state.db, the
	// logs and the next boot.
	Floor int64 `json:"floor"`
	// Partial is what partial uploads kept to resume hold.
	Partial int64 `json:"partial"`
	// StateReserve is the space kept allocated past state.db's end,
	// which nothing else can take; 0 when the node keeps none.
	StateReserve int64 `json:"state_reserve"`
}

// NodeCgroup is the node's own cgroup, which holds init, tor and the
// helpers they start, and the memory kept for it against the
// containers.
type NodeCgroup struct {
	// Path is the group's path in the cgroup hierarchy: "/allium/node".
	Path string `json:"path"`
	// Memory and MemoryPeak are the group's memory now and at most, in
	// bytes; the peak is 0 where the kernel keeps none (cgroup v2 before
	// Linux 5.19). They count what was charged to the group since init
	// moved in, early in the boot, before tor started: cgroup v2 leaves
	// a page charged where it was first touched, and the binaries' pages
	// in the initramfs were charged when the kernel unpacked it, so
	// init's and tor's RSS, which counts those, is above Memory.
	Memory     uint64 `json:"memory"`
	MemoryPeak uint64 `json:"memory_peak"`
	// Pids counts the group's tasks: processes and their threads.
	Pids int `json:"pids"`
	// Guaranteed is the memory kept for the group: its memory.min on
	// cgroup v2; on v1, which has no such thing, only the containers'
	// cap keeps it (total - ContainersMax).
	Guaranteed uint64 `json:"guaranteed"`
	// ContainersMax is the most memory all the containers together may
	// use, swap included, in bytes.
	ContainersMax uint64 `json:"containers_max"`
	// ContainersMemory is what all the containers use now, in bytes.
	ContainersMemory uint64 `json:"containers_memory"`
}

// Accepted is the body of a 202 answer to an action that proceeds after
// the response, such as a reboot.
type Accepted struct {
	Status string `json:"status"`
}

// TCPRequest is the body of PUT /v1/node/tcp.
type TCPRequest struct {
	Enabled bool `json:"enabled"`
	// Force switches TCP off from a TCP connection even when the
	// onion is not published, which can leave only the node's own
	// console and unix socket.
	Force bool `json:"force,omitempty"`
}

// TCPState is the answer to PUT /v1/node/tcp: Node.TCP afterwards.
type TCPState struct {
	TCP string `json:"tcp"`
}

// CodeLockOut: the request would leave its caller no way back in.
const CodeLockOut = "would_lock_out"
