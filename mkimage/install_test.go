package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The fake machine's root filesystem and its UUID.
const (
	fakeUUID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
	fakeMAC  = "52:54:00:12:34:56"
)

// machine is a fake VPS for install.sh's preflight: the files under
// ALLIUM_INSTALL_ROOT and what its commands print.
type machine struct {
	files    map[string]string // path in the tree: contents
	links    map[string]string // path in the tree: symlink target
	uid      string            // id -u
	arch     string            // uname -m
	bootFree int               // df's available KiB for /boot
	rootFree int               // and for /
	ipAddr   string            // ip -o -4 addr show scope global
	ipRoute  string            // ip -4 route show default
	noIP     bool              // no ip command
	cmds     map[string]string // more commands: name: sh script
}

// kvmStatic is a KVM VPS with a static ifupdown address: the case that
// installs.
func kvmStatic() *machine {
	return &machine{
		files: map[string]string{
			"proc/sys/kernel/kexec_load_disabled": "0\n",
			"sys/kernel/security/lockdown":        "[none] integrity confidentiality\n",
			"sys/class/dmi/id/sys_vendor":         "QEMU\n",
			"sys/class/dmi/id/product_name":       "Standard PC (i440FX + PIIX, 1996)\n",
			"proc/self/mounts":                    "/dev/vda1 / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n",
			"proc/cmdline":                        "BOOT_IMAGE=/boot/vmlinuz-6.1.0-28-amd64 root=UUID=" + fakeUUID + " ro quiet\n",
			"proc/1/environ":                      "HOME=/\x00TERM=linux\x00",
			"proc/cpuinfo":                        "flags\t\t: fpu vme hypervisor\n",
			"sys/class/net/eth0/address":          fakeMAC + "\n",
			"etc/resolv.conf":                     "nameserver 203.0.113.53\nnameserver 2001:db8::53\nnameserver 203.0.113.54\n",
			"etc/network/interfaces":              "auto eth0\niface eth0 inet static\n  address 203.0.113.10/24\n  gateway 203.0.113.1\n",
			"boot/vmlinuz-6.1.0-28-amd64":         "old kernel",
		},
		links:    map[string]string{"dev/disk/by-uuid/" + fakeUUID: "../../vda1"},
		uid:      "0",
		arch:     "x86_64",
		bootFree: 500000,
		rootFree: 9000000,
		ipAddr:   "2: eth0    inet 203.0.113.10/24 brd 203.0.113.255 scope global eth0\\       valid_lft forever preferred_lft forever",
		ipRoute:  "default via 203.0.113.1 dev eth0 onlink",
	}
}

// containerNS are a container's /proc/self/ns files: the namespaces
// rung's kinds.
func containerNS(m *machine) {
	for _, n := range []string{"mnt", "pid", "uts", "ipc"} {
		m.files["proc/self/ns/"+n] = ""
	}
}

// openvz is an OpenVZ container of 1 GiB (physpages' limit), with
// namespaces, no cgroups, no overlayfs and no user namespace sysctl.
func openvz() *machine {
	return kvmStatic().with(func(m *machine) {
		delete(m.files, "sys/class/dmi/id/sys_vendor")
		delete(m.files, "proc/sys/kernel/kexec_load_disabled")
		m.files["proc/vz/veinfo"] = ""
		m.files["proc/user_beancounters"] = "Version: 2.5\n" +
			"       uid  resource                     held              maxheld              barrier                limit              failcnt\n" +
			"      101:  kmemsize                  2670888              3284456  9223372036854775807  9223372036854775807                    0\n" +
			"            privvmpages                 14380                23056               131072               139264                    0\n" +
			"            physpages                   11013                17088         0    262144        0\n"
		m.files["proc/filesystems"] = "nodev\tsysfs\nnodev\tproc\n\text4\n"
		m.files["proc/self/mounts"] = "/dev/ploop12345p1 / ext4 rw 0 0\n"
		containerNS(m)
		m.ipRoute = "default dev venet0 scope link"
		m.ipAddr = "3: venet0    inet 198.51.100.7/32 brd 198.51.100.7 scope global venet0:0"
	})
}

// lxcFull is an LXC container with all that containers can use: user
// namespaces whose uid_map covers Allium's ids, cgroup v2 with memory,
// pids and cpu, and overlayfs.
func lxcFull() *machine {
	return kvmStatic().with(func(m *machine) {
		m.files["proc/1/environ"] = "container=lxc\x00HOME=/\x00"
		m.files["proc/sys/user/max_user_namespaces"] = "15000\n"
		m.files["proc/self/uid_map"] = "         0     100000    2000000\n"
		m.files["sys/fs/cgroup/cgroup.controllers"] = "cpuset cpu io memory hugetlb pids rdma misc\n"
		m.files["proc/filesystems"] = "nodev\tsysfs\nnodev\tproc\n\text4\nnodev\toverlay\n"
		containerNS(m)
	})
}

func (m *machine) with(f func(*machine)) *machine { f(m); return m }

// tree writes the machine's files to a new directory.
func (m *machine) tree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for p, data := range m.files {
		writeTestFile(t, filepath.Join(root, p), data, 0o644)
	}
	for p, target := range m.links {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// bin makes the directory of ALLIUM_INSTALL_BIN: fakes of id, uname,
// df and ip.
func (m *machine) bin(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	df := "#!/bin/sh\necho 'Filesystem 1024-blocks Used Available Capacity Mounted on'\ncase $2 in\n" +
		"*/boot) echo '/dev/vda1 9999999 1 " + strconv.Itoa(m.bootFree) + " 1% /boot' ;;\n" +
		"*) echo '/dev/vda1 9999999 1 " + strconv.Itoa(m.rootFree) + " 1% /' ;;\nesac\n"
	fakes := map[string]string{
		"id":    "#!/bin/sh\necho " + m.uid + "\n",
		"uname": "#!/bin/sh\necho " + m.arch + "\n",
		"df":    df,
		// The switch's commands (install.sh, takeover_switch): they
		// note what they were asked in the tree's /switched.
		"systemctl": "#!/bin/sh\necho \"systemctl $*\" >>\"$ALLIUM_INSTALL_ROOT/switched\"\n",
		"kill":      "#!/bin/sh\necho \"kill $*\" >>\"$ALLIUM_INSTALL_ROOT/switched\"\n",
	}
	if !m.noIP {
		fakes["ip"] = "#!/bin/sh\ncase \"$*\" in\n*route*) cat <<'EOF'\n" + m.ipRoute + "\nEOF\n;;\n*addr*) cat <<'EOF'\n" + m.ipAddr + "\nEOF\n;;\nesac\n"
	}
	for name, script := range m.cmds {
		fakes[name] = script
	}
	for name, script := range fakes {
		writeTestFile(t, filepath.Join(dir, name), script, 0o755)
	}
	return dir
}

func writeTestFile(t *testing.T, path, data string, perm os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
}

// treeHash is a digest of every path, mode, symlink target and file
// content under root.
func treeHash(t *testing.T, root string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		h.Write([]byte(p + "\x00" + fi.Mode().String() + "\x00"))
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			h.Write([]byte(target))
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(data)
		}
		h.Write([]byte{0})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// shells are the POSIX shells on this machine install.sh is run with.
func shells(t *testing.T) [][]string {
	var out [][]string
	for _, sh := range [][]string{{"dash"}, {"busybox", "sh"}, {"sh"}} {
		p, err := exec.LookPath(sh[0])
		if err != nil {
			t.Logf("%s not found: install.sh not tested with it", sh[0])
			continue
		}
		out = append(out, append([]string{p}, sh[1:]...))
	}
	if len(out) == 0 {
		t.Skip("no POSIX shell found (dash, busybox or sh)")
	}
	return out
}

// bundle builds an appliance with its install.sh, once per test.
func bundle(t *testing.T) string {
	t.Helper()
	fx := newFixture(t)
	if code, _, stderr := runMkimage(t, fx.args("--no-data", "--no-disk", "--no-tor")...); code != 0 {
		t.Fatalf("mkimage appliance = %d, want 0; stderr:\n%s", code, stderr)
	}
	return filepath.Join(fx.out, installFile)
}

// runInstall runs install.sh with args under sh against the machine m,
// whose tree is root.
func runInstall(t *testing.T, sh []string, script, root string, m *machine, args ...string) (code int, out string) {
	t.Helper()
	cmd := exec.Command(sh[0], append(append(sh[1:], script), args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "ALLIUM_INSTALL_ROOT=" + root, "ALLIUM_INSTALL_BIN=" + m.bin(t), "LC_ALL=C"}
	b, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("%v: %v", cmd.Args, err)
		}
	}
	return cmd.ProcessState.ExitCode(), string(b)
}

func TestInstallDryRun(t *testing.T) {
	script := bundle(t)
	const static = "ip=203.0.113.10::203.0.113.1:255.255.255.0::eth0:off:203.0.113.53:203.0.113.54 ifname=eth0:" + fakeMAC
	cases := []struct {
		name string
		m    *machine
		code int
		want []string
	}{
		{"kvm static", kvmStatic(), 0, []string{
			"ok    virt         KVM", "UUID " + fakeUUID, "mac " + fakeMAC, "static (no DHCP lease",
			"plan: kexec trial (kvm)", "write /boot/allium/vmlinuz", "write /boot/allium/initrd.img",
			"console=tty0 console=ttyS0 panic=-1 loglevel=4 allium.data=UUID=" + fakeUUID + ":/var/lib/allium " + static,
		}},
		{"dhcp lease", kvmStatic().with(func(m *machine) {
			m.files["var/lib/dhcp/dhclient.eth0.leases"] = "lease {\n  interface \"eth0\";\n  fixed-address 203.0.113.10;\n}\n"
		}), 0, []string{"DHCP (lease /var/lib/dhcp/dhclient.eth0.leases)", "allium.data=UUID=" + fakeUUID + ":/var/lib/allium ip=:::::eth0:dhcp ifname=eth0:" + fakeMAC}},
		{"dhcp route", kvmStatic().with(func(m *machine) {
			m.ipRoute = "default via 203.0.113.1 dev eth0 proto dhcp src 203.0.113.10 metric 100"
			m.ipAddr = strings.Replace(m.ipAddr, "scope global eth0", "scope global dynamic eth0", 1)
			m.files["var/lib/dhcp/dhclient.eth0.leases"] = "fixed-address 203.0.113.100;\n" // another address: not evidence
		}), 0, []string{"DHCP (route proto dhcp, address dynamic)", "ip=:::::eth0:dhcp ifname=eth0:"}},
		{"openvz", openvz(), 0, []string{"OpenVZ container", "plan: openvz takeover", "keep  /sbin/init as /sbin/init.allium-orig",
			"write /sbin/init.allium", "venet0 198.51.100.7/32"}},
		{"lxc", kvmStatic().with(func(m *machine) {
			m.files["proc/1/environ"] = "container=lxc\x00HOME=/\x00"
		}), 0, []string{"LXC container", "plan: lxc takeover"}},
		{"openvz no userns, cgroup v1 without memory", openvz().with(func(m *machine) {
			m.files["proc/sys/user/max_user_namespaces"] = "0\n"
			m.files["sys/fs/cgroup/cpu,cpuacct/tasks"] = ""
			m.files["sys/fs/cgroup/pids/tasks"] = ""
			m.files["sys/fs/cgroup/blkio/tasks"] = ""
		}), 0, []string{
			"info  namespaces   mount, pid, uts and ipc namespaces",
			"warn  userns       no user namespaces here (user.max_user_namespaces=0)",
			"warn  cgroups      cgroup v1 without the memory controller: no memory limits",
			"!without the pids controller", "!without the cpu controller",
			"warn  overlayfs    no overlayfs in /proc/filesystems",
			"info  memory       this container may use 1024 MiB (the beancounters' physpages limit)",
			"warn  rung         containers will run at the namespaces rung: no user namespaces here (user.max_user_namespaces=0); no cgroup memory controller: no memory limits\n",
			"plan: openvz takeover",
			"  containers: the namespaces rung (no user namespaces here (user.max_user_namespaces=0); no cgroup memory controller: no memory limits)",
			"  containers: no overlayfs; each root is a copy of its image",
			"  memory: 1024 MiB (the beancounters' physpages limit)",
		}},
		{"openvz old kernel", openvz().with(func(m *machine) {
			delete(m.files, "proc/self/ns/mnt")
			delete(m.files, "proc/self/ns/pid")
			m.files["proc/user_beancounters"] = strings.Replace(m.files["proc/user_beancounters"],
				"0    262144        0", "9223372036854775807 9223372036854775807 0", 1)
		}), 0, []string{
			"warn  namespaces   no mnt, pid in /proc/self/ns",
			"warn  userns       this kernel has no user namespaces (no /proc/sys/user/max_user_namespaces)",
			"warn  cgroups      no cgroup hierarchy in /sys/fs/cgroup: no memory, process or CPU limits",
			"info  memory       this container may use 512 MiB (the beancounters' privvmpages barrier)",
			"warn  rung         containers will run at the chroot rung: no namespaces (mnt, pid)",
		}},
		{"lxc everything", lxcFull(), 0, []string{
			"info  userns       user namespaces allowed (user.max_user_namespaces=15000); ids 1048576-1114111 can be mapped",
			"info  cgroups      cgroup v2 with the memory, pids and cpu controllers",
			"info  overlayfs    overlayfs",
			"info  rung         containers will run at the cgroups rung, the highest",
			"plan: lxc takeover", "  containers: the cgroups rung (user namespaces, cgroup v2 limits)",
			"!warn", "!memory:",
		}},
		{"lxc limited uid_map", lxcFull().with(func(m *machine) {
			m.files["proc/self/uid_map"] = "         0     100000      65536\n"
			m.files["sys/fs/cgroup/cgroup.controllers"] = "cpuset cpu io pids\n"
		}), 0, []string{
			"warn  userns       this container's uid_map (0 100000 65536) does not cover 1048576-1114111, the ids Allium maps containers to",
			"warn  cgroups      cgroup v2 without the memory controller: no memory limits",
			"warn  rung         containers will run at the namespaces rung: this container's uid_map",
		}},
		{"kexec disabled", kvmStatic().with(func(m *machine) {
			m.files["proc/sys/kernel/kexec_load_disabled"] = "1\n"
		}), 1, []string{"refusing: kexec: kexec is disabled (kernel.kexec_load_disabled=1"}},
		{"no kexec", kvmStatic().with(func(m *machine) {
			delete(m.files, "proc/sys/kernel/kexec_load_disabled")
		}), 1, []string{"this kernel has no kexec"}},
		{"lockdown", kvmStatic().with(func(m *machine) {
			m.files["sys/kernel/security/lockdown"] = "none [integrity] confidentiality\n"
		}), 1, []string{"refusing: lockdown: kernel lockdown is integrity"}},
		{"secure boot", kvmStatic().with(func(m *machine) {
			m.files["sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-e0d3e8f8c1f3"] = "\x06\x00\x00\x00\x01"
		}), 1, []string{"refusing: secureboot: Secure Boot is on"}},
		{"secure boot off", kvmStatic().with(func(m *machine) {
			m.files["sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-e0d3e8f8c1f3"] = "\x06\x00\x00\x00\x00"
		}), 0, []string{"EFI, Secure Boot off"}},
		{"full boot", kvmStatic().with(func(m *machine) { m.bootFree = 100 }), 1,
			[]string{"refusing: space: too little free space in /boot: 100 KiB free"}},
		{"full root", kvmStatic().with(func(m *machine) { m.rootFree = 1000 }), 1,
			[]string{"too little free space in /: 1000 KiB free"}},
		{"installed", kvmStatic().with(func(m *machine) {
			m.files["etc/allium/node.json"] = "{}"
			m.files["boot/allium/vmlinuz"] = "k"
		}), 1, []string{"refusing: allium: already an Allium node (found /etc/allium/node.json)"}},
		{"an earlier trial's files", kvmStatic().with(func(m *machine) {
			m.files["boot/allium/vmlinuz"] = "k"
		}), 0, []string{"ok    allium       not an Allium node; an earlier install's /boot/allium is replaced"}},
		{"arm64", kvmStatic().with(func(m *machine) { m.arch = "aarch64" }), 1,
			[]string{"refusing: arch: wrong architecture: this machine is aarch64, the bundle is x86_64"}},
		{"not root", kvmStatic().with(func(m *machine) { m.uid = "1000" }), 1,
			[]string{"refusing: root: not root (uid 1000)"}},
		{"xen pv", kvmStatic().with(func(m *machine) {
			delete(m.files, "sys/class/dmi/id/sys_vendor")
			m.files["sys/hypervisor/type"] = "xen\n"
			m.files["sys/hypervisor/guest_type"] = "PV\n"
		}), 1, []string{"Xen PV: kexec does not work there; upload disk.img"}},
		{"xen hvm", kvmStatic().with(func(m *machine) {
			m.files["sys/class/dmi/id/sys_vendor"] = "Xen\n"
			m.files["sys/class/dmi/id/product_name"] = "HVM domU\n"
			m.files["sys/hypervisor/type"] = "xen\n"
		}), 0, []string{"Xen HVM", "plan: kexec trial (xen-hvm)"}},
		{"unknown virt", kvmStatic().with(func(m *machine) {
			delete(m.files, "sys/class/dmi/id/sys_vendor")
			delete(m.files, "sys/class/dmi/id/product_name")
		}), 1, []string{"refusing: virt: unknown virtualization: a virtual machine of an unknown hypervisor (DMI: none)"}},
		{"docker", kvmStatic().with(func(m *machine) {
			m.files["run/systemd/container"] = "docker\n"
		}), 1, []string{"unknown virtualization: a docker container"}},
		{"xfs root", kvmStatic().with(func(m *machine) {
			m.files["proc/self/mounts"] = "/dev/vda1 / xfs rw 0 0\n"
		}), 1, []string{"refusing: rootfs: the root filesystem is xfs"}},
		{"no ip command", kvmStatic().with(func(m *machine) {
			m.noIP = true
			m.files["proc/net/route"] = "Iface\tDestination\tGateway\tFlags\nens3\t00000000\t017100CB\t0003\n"
		}), 1, []string{"no ip command", "refusing: network: no IPv4 address on the default route's link (ens3)"}},
	}
	for _, sh := range shells(t) {
		for _, c := range cases {
			t.Run(filepath.Base(strings.Join(sh, "-"))+"/"+c.name, func(t *testing.T) {
				root := c.m.tree(t)
				before := treeHash(t, root)
				code, out := runInstall(t, sh, script, root, c.m, "--dry-run")
				if code != c.code {
					t.Errorf("install.sh --dry-run = %d, want %d; output:\n%s", code, c.code, out)
				}
				for _, w := range c.want {
					if not, ok := strings.CutPrefix(w, "!"); ok {
						if strings.Contains(out, not) {
							t.Errorf("install.sh --dry-run: output has %q:\n%s", not, out)
						}
					} else if !strings.Contains(out, w) {
						t.Errorf("install.sh --dry-run: output lacks %q:\n%s", w, out)
					}
				}
				if c.code != 0 && !strings.Contains(out, "nothing was changed") {
					t.Errorf("install.sh --dry-run: a refusal without \"nothing was changed\":\n%s", out)
				}
				if after := treeHash(t, root); after != before {
					t.Errorf("install.sh --dry-run changed the machine's tree")
				}
			})
		}
	}
}

// A copy of install.sh cut short or altered in transit must be refused
// before any of its payload is used.
func TestInstallPayloadCheck(t *testing.T) {
	script := bundle(t)
	data, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	flipped := slices.Clone(data)
	flipped[len(flipped)-5] ^= 0xff // in kexec, the last file (13 bytes)
	cases := []struct {
		name string
		data []byte
		code int
		want string
	}{
		{"intact", data, 0, "sha256 verified"},
		{"truncated", data[:len(data)-10], 1, "refusing: payload: the bundle is"},
		{"header only", data[:bytes.Index(data, []byte("\n"+payloadMarker))+1+len(payloadMarker)], 1, "a truncated or altered copy"},
		{"altered", flipped, 1, "refusing: payload: sha256 mismatch in: kexec;"},
	}
	for _, sh := range shells(t) {
		for _, c := range cases {
			t.Run(filepath.Base(strings.Join(sh, "-"))+"/"+c.name, func(t *testing.T) {
				p := filepath.Join(t.TempDir(), installFile)
				writeTestFile(t, p, string(c.data), 0o755)
				m := kvmStatic()
				code, out := runInstall(t, sh, p, m.tree(t), m, "--check")
				if code != c.code || !strings.Contains(out, c.want) {
					t.Errorf("install.sh --check = %d, want %d and %q; output:\n%s", code, c.code, c.want, out)
				}
			})
		}
	}
}

func TestInstallHeader(t *testing.T) {
	h := installHeader(installSpec{node: "web1", arch: "x86_64", cmdline: "console=ttyS0 it's",
		built: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		files: []payloadFile{{name: "vmlinuz", size: 3, sum: "ab"}, {name: "init", size: 1, sum: "cd"}}})
	for _, want := range []string{
		"\nNODE=web1\n", "\nBUNDLE_ARCH=x86_64\n", "\nBUILT=2025-01-02T03:04:05Z\n",
		"\nBASE_CMDLINE='console=ttyS0 it'\\''s'\n", "\nPAYLOAD='vmlinuz 3 ab\ninit 1 cd'\n",
	} {
		if !strings.Contains(h, want) {
			t.Errorf("installHeader: lacks %q", want)
		}
	}
	for _, p := range []string{"@NODE@", "@ARCH@", "@BUILT@", "@CMDLINE@", "@PAYLOAD@"} {
		if strings.Contains(h, p) {
			t.Errorf("installHeader: placeholder %s left", p)
		}
	}
	if !strings.HasSuffix(h, "\n"+payloadMarker) {
		t.Errorf("installHeader: does not end with the line %q", strings.TrimSpace(payloadMarker))
	}
}
