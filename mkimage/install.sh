#!/bin/sh
# Allium install bundle, written by `mkimage appliance`. POSIX sh: it runs
# under dash, busybox sh and bash, as root, on the machine it takes over.
#
#   sh install.sh --dry-run   preflight and the plan; changes nothing
#   sh install.sh --check     preflight and the payload's checksums only
#
# The payload (the files named in PAYLOAD, one after the other, in that
# order) follows the line __PAYLOAD__ at the end of this file.
#
# ALLIUM_INSTALL_ROOT=/some/tree reads /proc, /sys, /etc, /boot, /dev and
# /var of that tree instead of /, and ALLIUM_INSTALL_BIN=/some/dir takes
# the commands that tell of the machine (id, uname, df, ip) from that
# directory alone, so the preflight can be tested against fake machines
# (busybox sh would run its own applets whatever PATH says).
# ALLIUM_INSTALL_BUNDLE names this file where $0 does not (sh -s < file).
set -u

NODE=@NODE@
BUNDLE_ARCH=@ARCH@
BUILT=@BUILT@
BASE_CMDLINE=@CMDLINE@
# One line a file: name, size in bytes, sha256; in payload order.
PAYLOAD=@PAYLOAD@
NODE_TAR=node.tar.gz # the takeover's /etc/allium (mkimage: nodeTarFile)

BOOT_DIR=/boot/allium
DATA_DIR=/var/lib/allium
ROOT_NEED_KB=262144 # room for the node's data directory: 256 MiB
KEXEC_OK='kvm xen-hvm'
# The first range of ids a container is mapped to at the userns rung
# (supervisor/idmap: First, Size): a container's own uid_map must cover it.
IDS_FIRST=1048576
IDS_LAST=1114111

R=${ALLIUM_INSTALL_ROOT:-}
R=${R%/}
SELF=${ALLIUM_INSTALL_BUNDLE:-$0}
BIN=${ALLIUM_INSTALL_BIN:-}

usage() {
	cat <<EOF
usage: sh install.sh [--dry-run | --check | --yes [--permanent] [--no-switch] | --remove]

Allium node $NODE ($BUNDLE_ARCH, built $BUILT).
Without an option it checks this machine, prints what an install would do,
and changes nothing.
  --dry-run    the same: check this machine and print the plan
  --check      check this machine and this bundle's payload only
  --yes        install: on KVM or Xen HVM, the node's kernel is put in
               $BOOT_DIR and kexec'd as a trial (a reset brings this system
               back); in an OpenVZ or LXC container, /sbin/init becomes
               Allium's (the old one is kept as /sbin/init.allium-orig)
  --permanent  with --yes on KVM/Xen HVM: also a GRUB entry, the default,
               so that the node comes up on every boot (this system's entries
               stay; 'cloud uninstall NAME' makes them the default again)
  --no-switch  with --yes: do everything but the switch itself
  --remove     on the old system, after a kexec install: take out the GRUB
               entry and $BOOT_DIR; the node's data stays in $DATA_DIR
EOF
}

# --- findings ---------------------------------------------------------

FAILS=
say() { printf '  %-5s %-12s %s\n' "$1" "$2" "$3"; }
ok() { say ok "$1" "$2"; }
info() { say info "$1" "$2"; }
warn() { say warn "$1" "$2"; }
fail() {
	say FAIL "$1" "$2"
	FAILS="$FAILS${FAILS:+; }$1: $2"
}

# sys NAME ARG...: runs one of the commands that tell of the machine.
sys() {
	if [ -n "$BIN" ]; then
		c=$1
		shift
		"$BIN/$c" "$@"
	else
		"$@"
	fi
}

# have NAME: whether sys NAME can run.
have() {
	if [ -n "$BIN" ]; then [ -x "$BIN/$1" ]; else command -v "$1" >/dev/null 2>&1; fi
}

# rd PATH: the first line of a file of the machine, or nothing.
rd() { head -n 1 "$R$1" 2>/dev/null; }

# --- payload ----------------------------------------------------------

payload_offset() {
	sed '/^__PAYLOAD__$/q' "$SELF" | wc -c | tr -d ' '
}

# payload_size NAME: the recorded size of a payload file.
payload_size() {
	printf '%s\n' "$PAYLOAD" | awk -v n="$1" '$1 == n { print $2 }'
}

# payload_cat NAME: the bytes of one payload file, on stdout.
payload_cat() {
	off=$(payload_offset)
	printf '%s\n' "$PAYLOAD" | {
		while read -r name size sum; do
			if [ "$name" = "$1" ]; then
				tail -c +"$((off + 1))" "$SELF" 2>/dev/null | head -c "$size"
				return
			fi
			off=$((off + size))
		done
	}
}

check_payload() {
	if [ ! -r "$SELF" ]; then
		fail payload "cannot read the bundle $SELF (copy it to the machine and run sh install.sh)"
		return
	fi
	off=$(payload_offset)
	want=$((off + $(printf '%s\n' "$PAYLOAD" | awk '{ s += $2 } END { print s + 0 }')))
	have=$(wc -c <"$SELF" | tr -d ' ')
	if [ "$have" -ne "$want" ]; then
		fail payload "the bundle is $have bytes, want $want: a truncated or altered copy; copy install.sh again"
		return
	fi
	bad=
	for name in $(printf '%s\n' "$PAYLOAD" | awk '{ print $1 }'); do
		sum=$(printf '%s\n' "$PAYLOAD" | awk -v n="$name" '$1 == n { print $3 }')
		got=$(payload_cat "$name" | sha256sum | cut -d ' ' -f 1)
		[ "$got" = "$sum" ] || bad="$bad $name"
	done
	if [ -n "$bad" ]; then
		fail payload "sha256 mismatch in:$bad; copy install.sh again"
		return
	fi
	ok payload "$(printf '%s\n' "$PAYLOAD" | awk '{ printf "%s%s (%d bytes)", s, $1, $2; s = ", " }'), sha256 verified"
}

# --- the machine ------------------------------------------------------

check_root() {
	uid=$(sys id -u 2>/dev/null) || uid=unknown
	if [ "$uid" = 0 ]; then ok root "running as root"; else fail root "not root (uid $uid): run it as root"; fi
}

check_arch() {
	ARCH=$(sys uname -m 2>/dev/null)
	case $ARCH in amd64) ARCH=x86_64 ;; arm64) ARCH=aarch64 ;; esac
	if [ "$ARCH" = "$BUNDLE_ARCH" ]; then
		ok arch "$ARCH"
	else
		fail arch "wrong architecture: this machine is ${ARCH:-unknown}, the bundle is $BUNDLE_ARCH"
	fi
}

# detect_virt sets VIRT: kvm, xen-hvm, xen-pv, xen-pvh, openvz, lxc,
# container:KIND, or unknown:WHAT.
detect_virt() {
	ctr=$({ tr '\000' '\n' <"$R/proc/1/environ"; } 2>/dev/null | sed -n 's/^container=//p' | head -n 1)
	[ -n "$ctr" ] || ctr=$(rd /run/systemd/container)
	dmi="$(rd /sys/class/dmi/id/sys_vendor) $(rd /sys/class/dmi/id/product_name)"
	dmi=${dmi# }
	dmi=${dmi% }
	if { [ -e "$R/proc/vz" ] || [ -e "$R/proc/user_beancounters" ]; } && [ ! -e "$R/proc/vz/version" ]; then
		VIRT=openvz
	elif [ -n "$ctr" ]; then
		case $ctr in lxc | lxc-libvirt) VIRT=lxc ;; openvz) VIRT=openvz ;; *) VIRT=container:$ctr ;; esac
	elif [ "$(rd /sys/hypervisor/type)" = xen ]; then
		case $(rd /sys/hypervisor/guest_type) in
		HVM) VIRT=xen-hvm ;;
		PVH) VIRT=xen-pvh ;;
		PV) VIRT=xen-pv ;;
		*) if [ -e "$R/sys/class/dmi/id" ]; then VIRT=xen-hvm; else VIRT=xen-pv; fi ;;
		esac
	elif printf '%s' "$dmi" | grep -Eqi 'qemu|kvm|bochs|openstack|digitalocean|hetzner|vultr|linode|amazon ec2|google'; then
		VIRT=kvm
	elif [ "$(rd /sys/devices/system/clocksource/clocksource0/current_clocksource)" = kvm-clock ]; then
		VIRT=kvm
	elif grep -qw hypervisor "$R/proc/cpuinfo" 2>/dev/null; then
		VIRT="unknown:a virtual machine of an unknown hypervisor (DMI: ${dmi:-none})"
	else
		VIRT="unknown:no hypervisor found (bare metal?)"
	fi
}

check_virt() {
	detect_virt
	case $VIRT in
	kvm) ok virt "KVM" ;;
	xen-hvm) ok virt "Xen HVM" ;;
	xen-pv) fail virt "Xen PV: kexec does not work there; upload disk.img and boot it with PyGrub instead" ;;
	xen-pvh) fail virt "Xen PVH: not supported; use disk.img with PyGrub if the provider offers it" ;;
	openvz) ok virt "OpenVZ container" ;;
	lxc) ok virt "LXC container" ;;
	container:*) fail virt "unknown virtualization: a ${VIRT#container:} container, neither OpenVZ nor LXC" ;;
	*) fail virt "unknown virtualization: ${VIRT#unknown:}" ;;
	esac
	case $VIRT in
	kvm | xen-hvm) PATHWAY=kexec ;;
	openvz | lxc) PATHWAY=takeover ;;
	*) PATHWAY=refuse ;;
	esac
}

check_kexec() {
	if [ -z "$(payload_size kexec)" ]; then
		fail kexec "this bundle has no kexec helper (mkimage found none beside it: build with make build, or pass --kexec)"
	fi
	dis=$(rd /proc/sys/kernel/kexec_load_disabled)
	case $dis in
	0) ok kexec "kexec_load_disabled is 0" ;;
	1) fail kexec "kexec is disabled (kernel.kexec_load_disabled=1; only a reboot clears it)" ;;
	*) fail kexec "this kernel has no kexec (no /proc/sys/kernel/kexec_load_disabled)" ;;
	esac
	lock=$(sed -n 's/.*\[\([a-z]*\)\].*/\1/p' "$R/sys/kernel/security/lockdown" 2>/dev/null)
	case $lock in
	'' | none) ok lockdown "${lock:-no lockdown}" ;;
	*) fail lockdown "kernel lockdown is $lock: the kernel refuses to kexec an unsigned kernel" ;;
	esac
	sb=$(ls "$R"/sys/firmware/efi/efivars/SecureBoot-* 2>/dev/null | head -n 1)
	if [ -z "$sb" ]; then
		if [ -d "$R/sys/firmware/efi" ]; then ok secureboot "EFI, no SecureBoot variable"; else ok secureboot "BIOS boot (no EFI)"; fi
	elif [ "$(od -An -tu1 "$sb" 2>/dev/null | tr -s ' \n' '  ' | awk '{ print $NF }')" = 1 ]; then
		fail secureboot "Secure Boot is on: the kernel refuses to kexec an unsigned kernel"
	else
		ok secureboot "EFI, Secure Boot off"
	fi
}

# free_kb DIR: the free KiB and the filesystem of DIR, as "KB FS".
free_kb() {
	sys df -Pk "$1" 2>/dev/null | awk 'NR == 2 { print $4, $1 }'
}

check_space() {
	bootkb=$((($(payload_size vmlinuz) + $(payload_size initrd.img)) / 1024 + 1024))
	bootdir=$R/boot
	[ -d "$bootdir" ] || bootdir=$R/
	set -- $(free_kb "$bootdir")
	bfree=${1:-0} bfs=${2:-?}
	set -- $(free_kb "$R/")
	rfree=${1:-0} rfs=${2:-?}
	rneed=$ROOT_NEED_KB
	if [ "$PATHWAY" = kexec ]; then
		if [ "$bfree" -lt "$bootkb" ]; then
			fail space "too little free space in /boot: ${bfree} KiB free, want ${bootkb} KiB"
		else
			ok space "/boot: ${bfree} KiB free, needs ${bootkb} KiB"
		fi
		[ "$bfs" = "$rfs" ] && rneed=$((rneed + bootkb))
	else
		rneed=$((rneed + $(payload_size init) / 1024))
	fi
	if [ "$rfree" -lt "$rneed" ]; then
		fail space "too little free space in /: ${rfree} KiB free, want ${rneed} KiB"
	else
		ok space "/: ${rfree} KiB free, needs ${rneed} KiB"
	fi
}

# check_rootfs sets ROOTDEV, ROOTFS and ROOTUUID.
check_rootfs() {
	m=$R/proc/self/mounts
	[ -r "$m" ] || m=$R/proc/mounts
	set -- $(awk '$2 == "/" { d = $1; t = $3 } END { print d, t }' "$m" 2>/dev/null)
	ROOTDEV=${1:-} ROOTFS=${2:-} ROOTUUID=
	if [ -n "$ROOTDEV" ]; then
		for l in "$R"/dev/disk/by-uuid/*; do
			[ -L "$l" ] || continue
			if [ "$(basename "$(readlink "$l")")" = "$(basename "$ROOTDEV")" ]; then
				ROOTUUID=$(basename "$l")
				break
			fi
		done
	fi
	if [ -z "$ROOTUUID" ]; then
		ROOTUUID=$({ tr ' ' '\n' <"$R/proc/cmdline"; } 2>/dev/null | sed -n 's/^root=UUID=//p' | head -n 1)
	fi
	if [ "$PATHWAY" != kexec ]; then
		info rootfs "${ROOTDEV:-?} (${ROOTFS:-?}): the node's data goes to $DATA_DIR on it"
		return
	fi
	case $ROOTFS in
	ext2 | ext3 | ext4) ;;
	'') fail rootfs "cannot find the root filesystem in /proc/self/mounts" && return ;;
	*) fail rootfs "the root filesystem is $ROOTFS: the node keeps its data on ext2/3/4 only" && return ;;
	esac
	if [ -z "$ROOTUUID" ]; then
		fail rootfs "$ROOTDEV ($ROOTFS) has no UUID in /dev/disk/by-uuid or root=UUID= on /proc/cmdline"
		return
	fi
	ok rootfs "$ROOTDEV ($ROOTFS), UUID $ROOTUUID"
}

# --- what containers get (OpenVZ/LXC) ---------------------------------

# The isolation ladder (supervisor/isolation): chroot; namespaces (mount,
# pid, uts, ipc); userns (user namespaces mapping the ids from
# $IDS_FIRST); cgroups (the memory, pids and cpu controllers). A rung
# needs those below it; cgroup limits apply at every rung where the
# controllers are. None of this refuses: a container is told what its
# own containers will not get.

# userns_why: why containers get no user namespaces here, or nothing.
userns_why() {
	max=$(rd /proc/sys/user/max_user_namespaces)
	case $max in
	'') echo "this kernel has no user namespaces (no /proc/sys/user/max_user_namespaces)" && return ;;
	0) echo "no user namespaces here (user.max_user_namespaces=0)" && return ;;
	esac
	[ -r "$R/proc/self/uid_map" ] || return
	awk -v lo="$IDS_FIRST" -v hi="$IDS_LAST" '
		NF >= 3 { if ($1 + 0 <= lo + 0 && $1 + $3 - 1 >= hi + 0) ok = 1; m = m (m ? ", " : "") $1 " " $2 " " $3 }
		END { if (!ok) printf "this container'\''s uid_map (%s) does not cover %d-%d, the ids Allium maps containers to\n", (m ? m : "empty"), lo, hi }
	' "$R/proc/self/uid_map"
}

# cgroup_ctrls: the cgroup hierarchy and its controllers, as "v2 c..."
# or "v1 c...", or nothing when no hierarchy is mounted.
cgroup_ctrls() {
	cg=$R/sys/fs/cgroup
	if [ -r "$cg/cgroup.controllers" ]; then
		echo "v2 $(rd /sys/fs/cgroup/cgroup.controllers)"
		return
	fi
	found=
	for d in "$cg"/*; do
		[ -d "$d" ] || continue
		found="$found $(basename "$d" | tr ',' ' ')"
	done
	[ -n "$found" ] && echo "v1$found"
}

# mem_limit: the container's memory from /proc/user_beancounters, as
# "MiB what", or nothing where it has none (LONG_MAX is unlimited).
mem_limit() {
	awk '
		$1 == "Version:" { next }
		$1 ~ /:$/ { if (++blocks > 1) exit; $1 = ""; $0 = $0 }
		NF == 6 && blocks == 1 { bar[$1] = $4; lim[$1] = $5 }
		function limited(n) { return n ~ /^[0-9]+$/ && n != "0" && n != "9223372036854775807" }
		END {
			if (limited(lim["physpages"])) printf "%d physpages limit\n", lim["physpages"] / 256
			else if (limited(bar["privvmpages"])) printf "%d privvmpages barrier\n", bar["privvmpages"] / 256
		}
	' "$R/proc/user_beancounters" 2>/dev/null
}

# check_container sets RUNG (the highest rung containers can expect),
# CT_GAPS (why not higher, and the cgroup limits they will not get),
# CT_CG (v1, v2 or nothing), CT_OVL (yes or no) and CT_MEM.
check_container() {
	CT_GAPS=
	gap() { CT_GAPS="$CT_GAPS${CT_GAPS:+; }$1"; }
	ns=yes userns=yes cg=yes
	nsmiss=
	for n in mnt pid uts ipc; do
		[ -e "$R/proc/self/ns/$n" ] || nsmiss="$nsmiss${nsmiss:+, }$n"
	done
	if [ -n "$nsmiss" ]; then
		warn namespaces "no $nsmiss in /proc/self/ns: containers share the node's"
		gap "no namespaces ($nsmiss)"
		ns=no
	else
		info namespaces "mount, pid, uts and ipc namespaces"
	fi
	why=$(userns_why)
	if [ -n "$why" ]; then
		warn userns "$why: a container's root is the node's root"
		gap "$why"
		userns=no
	else
		info userns "user namespaces allowed (user.max_user_namespaces=$(rd /proc/sys/user/max_user_namespaces)); ids $IDS_FIRST-$IDS_LAST can be mapped"
	fi
	set -- $(cgroup_ctrls)
	CT_CG=${1:-}
	[ $# -gt 0 ] && shift
	if [ -z "$CT_CG" ]; then
		warn cgroups "no cgroup hierarchy in /sys/fs/cgroup: no memory, process or CPU limits"
		gap "no cgroup hierarchy: no memory, process or CPU limits"
		cg=no
	else
		ctrls=" $* "
		for c in memory pids cpu; do
			case $ctrls in *" $c "*) continue ;; esac
			case $c in memory) what="no memory limits" ;; pids) what="no process limits" ;; *) what="no CPU shares" ;; esac
			warn cgroups "cgroup $CT_CG without the $c controller: $what"
			gap "no cgroup $c controller: $what"
			cg=no
		done
		[ "$cg" = yes ] && info cgroups "cgroup $CT_CG with the memory, pids and cpu controllers"
	fi
	if grep -Eq '[[:space:]]overlay(fs)?$' "$R/proc/filesystems" 2>/dev/null; then
		CT_OVL=yes
		info overlayfs "overlayfs: a container's root is an overlay on its image"
	else
		CT_OVL=no
		warn overlayfs "no overlayfs in /proc/filesystems: each container's root is a full copy of its image"
	fi
	set -- $(mem_limit)
	if [ $# -gt 0 ]; then
		CT_MEM="$1 MiB (the beancounters' $2 $3)"
		info memory "this container may use $CT_MEM"
	elif [ -e "$R/proc/user_beancounters" ]; then
		CT_MEM="no limit in /proc/user_beancounters"
		info memory "$CT_MEM"
	else
		CT_MEM=
	fi
	RUNG=chroot
	[ "$ns" = yes ] && RUNG=namespaces
	[ "$ns$userns" = yesyes ] && RUNG=userns
	[ "$ns$userns$cg" = yesyesyes ] && RUNG=cgroups
	if [ -n "$CT_GAPS" ]; then
		warn rung "containers will run at the $RUNG rung: $CT_GAPS"
	else
		info rung "containers will run at the cgroups rung, the highest"
	fi
}

# mask BITS: the dotted netmask of a prefix length.
mask() {
	m= i=0
	while [ "$i" -lt 4 ]; do
		n=$(($1 - 8 * i))
		[ "$n" -gt 8 ] && n=8
		[ "$n" -lt 0 ] && n=0
		m="$m${m:+.}$((256 - (1 << (8 - n))))"
		i=$((i + 1))
	done
	echo "$m"
}

# check_net sets DEV, ADDR (a.b.c.d/len), GW, DNS, MAC, DHCP (yes/no)
# and NET_WHY (the evidence).
check_net() {
	DEV= ADDR= GW= DNS= MAC= DHCP=no NET_WHY= proto= dyn=
	if have ip; then
		set -- $(sys ip -4 route show default 2>/dev/null | head -n 1 |
			awk '{ for (i = 1; i < NF; i++) { if ($i == "via") g = $(i+1); if ($i == "dev") d = $(i+1); if ($i == "proto") p = $(i+1) } }
			END { print (g ? g : "-"), (d ? d : "-"), (p ? p : "-") }')
		GW=${1#-} DEV=${2#-} proto=${3#-}
		line=$(sys ip -o -4 addr show scope global 2>/dev/null | awk -v d="$DEV" 'd == "" || $2 == d' | head -n 1)
		[ -n "$DEV" ] || DEV=$(printf '%s\n' "$line" | awk '{ print $2 }')
		ADDR=$(printf '%s\n' "$line" | awk '{ print $4 }')
		case " $line " in *' dynamic '*) dyn=yes ;; esac
	else
		set -- $(awk 'NR > 1 && $2 == "00000000" { print $1, $3; exit }' "$R/proc/net/route" 2>/dev/null)
		DEV=${1:-}
		[ -n "${2:-}" ] && GW=$(printf '%s\n' "$2" | awk '{ h = "0123456789ABCDEF"; s = toupper($0)
			for (i = 7; i >= 1; i -= 2) printf "%d%s", 16 * (index(h, substr(s, i, 1)) - 1) + index(h, substr(s, i + 1, 1)) - 1, (i > 1 ? "." : "\n") }')
		warn network "no ip command: read the gateway from /proc/net/route; the address is unknown"
	fi
	MAC=$(rd "/sys/class/net/$DEV/address")
	resolv=$R/etc/resolv.conf
	if grep -q '^nameserver 127\.0\.0\.53' "$resolv" 2>/dev/null && [ -r "$R/run/systemd/resolve/resolv.conf" ]; then
		resolv=$R/run/systemd/resolve/resolv.conf
	fi
	DNS=$(awk '$1 == "nameserver" && $2 !~ /:/ && $2 !~ /^127\./ { print $2 }' "$resolv" 2>/dev/null | head -n 2 | tr '\n' ' ')
	DNS=${DNS% }
	[ "$proto" = dhcp ] && NET_WHY="${NET_WHY}route proto dhcp, "
	[ "$dyn" = yes ] && NET_WHY="${NET_WHY}address dynamic, "
	if [ -n "$ADDR" ]; then
		re=$(printf '%s' "${ADDR%/*}" | sed 's/\./\\./g')
		for f in "$R"/var/lib/dhcp/*.lease* "$R"/var/lib/dhclient/*.lease* "$R"/run/systemd/netif/leases/* \
			"$R"/var/lib/NetworkManager/*.lease; do
			[ -f "$f" ] || continue
			if grep -Eq "(^|[^0-9.])$re([^0-9.]|\$)" "$f" 2>/dev/null; then
				NET_WHY="${NET_WHY}lease ${f#"$R"}, "
			fi
		done
	fi
	NET_WHY=${NET_WHY%, }
	[ -n "$NET_WHY" ] && DHCP=yes
	if [ "$PATHWAY" = takeover ]; then
		info network "${DEV:-?} ${ADDR:-?}: left as the container's host set it up"
		return
	fi
	if [ -z "$ADDR" ] && [ "$DHCP" = no ]; then
		fail network "no IPv4 address on the default route's link (${DEV:-none}): the node would come up without a network"
		return
	fi
	how="static (no DHCP lease or dynamic address found)"
	[ "$DHCP" = yes ] && how="DHCP ($NET_WHY)"
	ok network "$DEV ${ADDR:-?} gateway ${GW:-none} dns ${DNS:-none} mac ${MAC:-?}; $how"
}

# ip_param: the kernel's ip= for the network this machine has, on the
# link it has now, and dracut's ifname=, which gives the link with this
# MAC that name in the node (whose kernel may name it otherwise).
ip_param() {
	if [ "$DHCP" = yes ]; then
		printf 'ip=:::::%s:dhcp' "$DEV"
	else
		set -- $DNS
		printf '%s' "ip=${ADDR%/*}::$GW:$(mask "${ADDR#*/}")::$DEV:off:${1:-}:${2:-}" | sed 's/:*$//'
	fi
	[ -n "$MAC" ] && printf ' ifname=%s:%s' "$DEV" "$MAC"
	echo
}

check_allium() {
	found=
	[ -e "$R/etc/allium/node.json" ] && found="$found /etc/allium/node.json,"
	[ -e "$R/sbin/init.allium-orig" ] && found="$found /sbin/init.allium-orig,"
	grep -q 'allium\.' "$R/proc/cmdline" 2>/dev/null && found="$found allium.* on /proc/cmdline,"
	if [ -n "$found" ]; then
		fail allium "already an Allium node (found${found%,}): uninstall it first (cloud uninstall NAME)"
	elif [ -e "$R$BOOT_DIR" ]; then
		ok allium "not an Allium node; an earlier install's $BOOT_DIR is replaced"
	else
		ok allium "not an Allium node"
	fi
}

# --- the plan ---------------------------------------------------------

cmdline() {
	echo "$BASE_CMDLINE allium.data=UUID=$ROOTUUID:$DATA_DIR $(ip_param)"
}

plan() {
	case $PATHWAY in
	kexec)
		echo "plan: kexec trial ($VIRT); a reset or a power cycle brings the old system back"
		echo "  write $BOOT_DIR/vmlinuz ($(payload_size vmlinuz) bytes)"
		echo "  write $BOOT_DIR/initrd.img ($(payload_size initrd.img) bytes)"
		echo "  data  $DATA_DIR on the root filesystem (UUID $ROOTUUID); nothing of the old system is deleted"
		echo "  kexec $BOOT_DIR/vmlinuz (kexec_file_load, else kexec_load) with the command line:"
		echo "    $(cmdline)"
		echo "  the bootloader is left as it is"
		;;
	takeover)
		echo "plan: $VIRT takeover; /sbin/init.allium-orig is the way back"
		echo "  write /sbin/init.allium ($(payload_size init) bytes)"
		echo "  keep  /sbin/init as /sbin/init.allium-orig"
		echo "  write /etc/allium (node.json, keys); allium-tor in /etc/passwd and /etc/group where tor needs it"
		echo "  keep  /sbin/{halt,reboot,poweroff,shutdown,telinit} as NAME.allium-orig; link them to init.allium"
		echo "  link  /sbin/init -> init.allium (last)"
		echo "  then  ask the old init to restart the container (not with --no-switch)"
		echo "  data  $DATA_DIR on the container's root filesystem"
		echo "  the network stays as the host set it up (${DEV:-?} ${ADDR:-?})"
		if [ -n "$CT_GAPS" ]; then
			echo "  containers: the $RUNG rung ($CT_GAPS)"
		else
			echo "  containers: the cgroups rung (user namespaces, cgroup $CT_CG limits)"
		fi
		[ "$CT_OVL" = no ] && echo "  containers: no overlayfs; each root is a copy of its image"
		[ -n "$CT_MEM" ] && echo "  memory: $CT_MEM"
		;;
	esac
}

# --- the install -----------------------------------------------------

# step NAME WHAT: one line of progress; `cloud install` reads these
# (the word "step" first) to time and show the install's phases.
step() { printf 'step  %-12s %s\n' "$1" "$2"; }

# die WHAT: the install stops; what was done so far is named by the
# steps before, and the old system still boots as it did.
die() {
	printf 'install.sh: %s\n' "$1" >&2
	if [ -n "${ROLLBACK:-}" ]; then
		r=$ROLLBACK
		ROLLBACK=
		$r
	fi
	exit 1
}

# put NAME DEST MODE: the payload file NAME written to DEST through a
# temporary file beside it, checked against its sha256, then renamed.
put() {
	sum=$(printf '%s\n' "$PAYLOAD" | awk -v n="$1" '$1 == n { print $3 }')
	tmp=$2.allium-tmp
	# busybox's head says nothing of a failed write: the size tells
	# (tail's broken pipe, once head has its bytes, is no error).
	if ! payload_cat "$1" 2>/dev/null >"$tmp" || [ ! -f "$tmp" ] || [ "$(wc -c <"$tmp" | tr -d ' ')" != "$(payload_size "$1")" ]; then
		rm -f "$tmp"
		die "write $2: $(df -Pk "$(dirname "$2")" | awk 'NR == 2 { print $4 }') KiB free (a full disk?)"
	fi
	got=$(sha256sum <"$tmp" | cut -d ' ' -f 1)
	if [ "$got" != "$sum" ]; then
		rm -f "$tmp"
		die "write $2: the copy's sha256 is $got, want $sum (a full disk?)"
	fi
	chmod "$3" "$tmp" && sync && mv -f "$tmp" "$2" || die "write $2 failed"
}

# run_kexec ARG...: the bundle's kexec helper, once written to $BOOT_DIR
# (a test's ALLIUM_INSTALL_BIN/kexec stands in for it).
run_kexec() {
	if [ -n "$BIN" ]; then "$BIN/kexec" "$@"; else "$BOOT_DIR/kexec" "$@"; fi
}

# The node's entry comes after the old system's (10_linux, 30_os-prober,
# 40_custom, 41_custom), so that their places, and a numeric
# GRUB_DEFAULT, keep their meaning; it is made the default by its id.
GRUB_SNIPPET=/etc/grub.d/42_allium
# OLD_MARK in the node's data directory: GRUB's entry leaves the default
# to the old system while it exists (cloud uninstall writes it).
OLD_MARK=boot-old-system

# grub_mkconfig: regenerates grub.cfg the way this system does.
grub_mkconfig() {
	if have update-grub; then
		sys update-grub
	elif have grub-mkconfig; then
		sys grub-mkconfig -o /boot/grub/grub.cfg
	else
		sys grub2-mkconfig -o /boot/grub2/grub.cfg
	fi
}

# check_grub: --permanent needs GRUB 2 and its configuration tools.
check_grub() {
	if [ ! -d "$R/etc/grub.d" ]; then
		fail grub "no /etc/grub.d: --permanent needs GRUB 2 (the trial install works without it)"
	elif ! have update-grub && ! have grub-mkconfig && ! have grub2-mkconfig; then
		fail grub "no update-grub or grub-mkconfig: --permanent needs them (the trial install works without)"
	else
		ok grub "GRUB 2: $GRUB_SNIPPET makes the node the default entry"
	fi
}

# grub_entry: the GRUB entry that boots the node, the default unless the
# node has asked for the old system ($DATA_DIR/boot-old-system, which
# `cloud uninstall` writes). grub-mkconfig runs the snippet, so the
# paths are worked out as its own entries' are, /boot a partition or not.
grub_entry() {
	step grub "$GRUB_SNIPPET: the node's entry, the default; this system's entries stay as they are"
	tmp=$R$GRUB_SNIPPET.allium-tmp
	{
		echo '#!/bin/sh'
		echo "# Allium node $NODE: written by install.sh --permanent; 'sh install.sh --remove' takes it out."
		echo 'set -e'
		echo '. "${pkgdatadir:-/usr/share/grub}/grub-mkconfig_lib"'
		echo "kernel=$BOOT_DIR/vmlinuz data=$DATA_DIR"
		echo "cmdline='$(cmdline) allium.install=grub'"
		cat <<'SNIPPET'
[ -f "$kernel" ] || exit 0
echo "Found the Allium node: $kernel" >&2
kdir=$(make_system_path_relative_to_its_root "${kernel%/*}")
ddir=$(make_system_path_relative_to_its_root "$data")
echo "# the node is the default unless it asked for this system ($data/boot-old-system)"
echo 'set allium_saved_root="$root"'
prepare_grub_to_access_device $(${grub_probe} --target=device "$data")
echo "if [ ! -e \"$ddir/boot-old-system\" ]; then set default=allium; fi"
echo 'set root="$allium_saved_root"'
echo "menuentry 'Allium node' --id allium {"
prepare_grub_to_access_device $(${grub_probe} --target=device "$kernel") | sed 's/^/	/'
echo "	linux $kdir/vmlinuz $cmdline"
echo "	initrd $kdir/initrd.img"
echo "}"
SNIPPET
	} >"$tmp" && chmod 755 "$tmp" && mv -f "$tmp" "$R$GRUB_SNIPPET" || die "write $GRUB_SNIPPET failed"
	if ! out=$(grub_mkconfig 2>&1); then
		rm -f "$R$GRUB_SNIPPET"
		grub_mkconfig >/dev/null 2>&1
		die "update-grub failed, the entry is taken out again: $(printf '%s\n' "$out" | tail -n 3)"
	fi
}

# do_kexec: the kexec takeover (KVM, Xen HVM); see plan.
do_kexec() {
	step files "$BOOT_DIR: vmlinuz, initrd.img, kexec"
	mkdir -p "$R$BOOT_DIR" && chmod 700 "$R$BOOT_DIR" || die "mkdir $BOOT_DIR failed"
	put vmlinuz "$R$BOOT_DIR/vmlinuz" 644
	put initrd.img "$R$BOOT_DIR/initrd.img" 600 # it holds the node's keys
	put kexec "$R$BOOT_DIR/kexec" 755
	line=$(cmdline)
	printf '%s\n' "$line" >"$R$BOOT_DIR/cmdline" || die "write $BOOT_DIR/cmdline failed"
	step data "$DATA_DIR on the root filesystem (UUID $ROOTUUID)"
	mkdir -p "$R$DATA_DIR" && chmod 700 "$R$DATA_DIR" || die "mkdir $DATA_DIR failed"
	rm -f "$R$DATA_DIR/$OLD_MARK"
	[ "$PERMANENT" = yes ] && grub_entry
	step load "kexec load: $line"
	# The node says how it was installed, so that cloud uninstall knows
	# what to undo: with --permanent, this first boot is GRUB's too.
	how=kexec
	[ "$PERMANENT" = yes ] && how=grub
	out=$(run_kexec load --kernel "$R$BOOT_DIR/vmlinuz" --initrd "$R$BOOT_DIR/initrd.img" --cmdline "$line allium.install=$how" 2>&1) ||
		die "$(printf '%s\n' "$out" | tail -n 1); this system is unchanged but for $BOOT_DIR${PERMANENT#no}"
	step loaded "$out"
	if [ "$SWITCH" = no ]; then
		step ready "--no-switch: the node's kernel is loaded; 'systemctl kexec' (or $BOOT_DIR/kexec exec) switches"
		exit 0
	fi
	step switch "kexec into the node in 2 s; this connection will drop"
	# Detached, so that this script (and an ssh session running it) ends
	# first; systemd stops the services and unmounts before it kexecs.
	(
		sleep 2
		if [ -d /run/systemd/system ] && have systemctl && sys systemctl kexec; then exit 0; fi
		sync
		run_kexec exec
	) </dev/null >/dev/null 2>&1 &
	exit 0
}

# do_remove: takes a kexec install's files out of the old system, run
# there (after a reset, or cloud uninstall): the GRUB entry, then
# $BOOT_DIR. The node's data in $DATA_DIR stays.
do_remove() {
	if [ -e "$R$GRUB_SNIPPET" ]; then
		step grub "removing $GRUB_SNIPPET"
		rm -f "$R$GRUB_SNIPPET" || die "rm $GRUB_SNIPPET failed"
		out=$(grub_mkconfig 2>&1) || die "update-grub failed: $(printf '%s\n' "$out" | tail -n 3)"
	fi
	if [ -e "$R$BOOT_DIR" ]; then
		step files "removing $BOOT_DIR"
		rm -rf "$R$BOOT_DIR" || die "rm -r $BOOT_DIR failed"
	fi
	rm -f "$R$DATA_DIR/$OLD_MARK"
	step done "the node's data stays in $DATA_DIR (rm -r it to forget the node; a new install finds it there)"
	exit 0
}

# --- the OpenVZ/LXC takeover ------------------------------------------
#
# Everything the takeover changes is kept or recorded, so that a failure
# part way (ROLLBACK: takeover_undo) and `cloud uninstall` (the node's
# uninstallTakeover, init/takeover_linux.go) put the container back:
#
#   /sbin/init.allium               added: init
#   /etc/allium/                    added: node.json, keys (node.tar.gz)
#   /etc/allium/takeover            added: the record, "kept PATH" and
#                                   "added PATH" lines, for the uninstall
#   /etc/passwd, /etc/group         allium-tor added where tor needs it;
#                                   the old files kept as NAME.allium-orig
#   /sbin/halt reboot poweroff      each kept as NAME.allium-orig (where
#   shutdown telinit                it was there) and made a link to
#                                   init.allium: vzctl stop and restart run
#                                   them inside the container; until the
#                                   switch init runs the kept ones
#   /sbin/init                      last: kept as init.allium-orig, then a
#                                   link to init.allium by one rename, so
#                                   it is never missing

# The power commands init answers to (init/power.go), /sbin/init last.
TAKEOVER_LINKS='halt reboot poweroff shutdown telinit init'

# init_kind: the container's init system, from /sbin/init: systemd,
# sysvinit or busybox, or unknown:WHY. The switch asks it to restart
# the container, so one the installer cannot ask is refused.
init_kind() {
	i=$R/sbin/init
	if [ ! -e "$i" ] && [ ! -L "$i" ]; then
		echo "unknown:this container has no /sbin/init"
		return
	fi
	if [ -L "$i" ]; then
		t=$(readlink "$i")
		case $(basename "$t") in
		systemd) echo systemd && return ;;
		busybox) echo busybox && return ;;
		esac
		case $t in /*) i=$R$t ;; *) i=$(dirname "$i")/$t ;; esac
	fi
	if grep -q 'INIT_VERSION=sysvinit' "$i" 2>/dev/null; then
		echo sysvinit
	elif grep -q 'systemd' "$i" 2>/dev/null && grep -q 'org.freedesktop.systemd1' "$i" 2>/dev/null; then
		echo systemd
	else
		echo "unknown:/sbin/init is not systemd, sysvinit or busybox init, which the installer knows how to ask to restart the container"
	fi
}

# takeover_check: refuses, before any change, a container that holds
# what the takeover would write (a node installed before, or the
# leftovers of one).
takeover_check() {
	found=
	for n in $TAKEOVER_LINKS; do
		for p in "/sbin/$n.allium-orig" "/sbin/$n.allium-tmp"; do
			if [ -e "$R$p" ] || [ -L "$R$p" ]; then found="$found $p"; fi
		done
	done
	for p in /sbin/init.allium /etc/allium /etc/allium.allium-tmp /etc/passwd.allium-orig /etc/group.allium-orig; do
		if [ -e "$R$p" ] || [ -L "$R$p" ]; then found="$found $p"; fi
	done
	[ -z "$found" ] || die "already taken over, or an earlier install's leftovers: found$found; uninstall it first (cloud uninstall NAME), or move these away; nothing was changed"
}

# takeover_undo puts back what the takeover changed so far, newest
# first: ROLLBACK of die.
takeover_undo() {
	step undo "putting the container back as it was"
	for p in $KEPT; do
		mv -f "$R$p.allium-orig" "$R$p" || printf 'install.sh: could not put %s back: it is %s.allium-orig\n' "$p" "$p" >&2
	done
	for p in $ADDED; do
		rm -rf "$R$p"
	done
	for n in $TAKEOVER_LINKS; do rm -f "$R/sbin/$n.allium-tmp"; done
	rm -rf "$R/etc/allium.allium-tmp" "$R/etc/passwd.allium-tmp" "$R/etc/group.allium-tmp"
	sync
}

# keep PATH: PATH copied to PATH.allium-orig (a symlink as a symlink),
# and recorded in KEPT once the copy is whole.
keep() {
	if ! cp -pP "$R$1" "$R$1.allium-orig" 2>/dev/null; then
		rm -f "$R$1.allium-orig"
		die "keep $1 as $1.allium-orig: the copy failed (a full disk?)"
	fi
	KEPT="$1 $KEPT"
}

# add_user FILE NAME: NAME's line from the node's own FILE added to the
# container's, the old one kept.
add_user() {
	grep -q "^$2:" "$R/etc/$1" 2>/dev/null && return
	line=$(grep "^$2:" "$R/etc/allium.allium-tmp/etc/allium/$1")
	keep "/etc/$1"
	{ cat "$R/etc/$1" && printf '%s\n' "$line"; } >"$R/etc/$1.allium-tmp" &&
		chmod 644 "$R/etc/$1.allium-tmp" && mv -f "$R/etc/$1.allium-tmp" "$R/etc/$1" ||
		die "add $2 to /etc/$1 failed (a full disk?)"
}

# link NAME: /sbin/NAME, kept where it was there, becomes a link to
# init.allium by one rename.
link() {
	p=/sbin/$1
	if [ -e "$R$p" ] || [ -L "$R$p" ]; then
		keep "$p"
	else
		ADDED="$p $ADDED"
	fi
	ln -s init.allium "$R$p.allium-tmp" && mv -f "$R$p.allium-tmp" "$R$p" || die "link $p -> init.allium failed"
}

# do_takeover: the OpenVZ/LXC takeover; see plan.
do_takeover() {
	KIND=$(init_kind)
	case $KIND in unknown:*) die "${KIND#unknown:}; nothing was changed" ;; esac
	takeover_check
	KEPT= ADDED=
	ROLLBACK=takeover_undo
	step files "/etc/allium: node.json and keys"
	stage=$R/etc/allium.allium-tmp
	mkdir -m 700 "$stage" || die "mkdir $stage failed"
	put "$NODE_TAR" "$stage/node.tar.gz" 600
	tar -xzf "$stage/node.tar.gz" -C "$stage" || die "unpack $NODE_TAR into $stage failed (a full disk?)"
	tor=yes
	grep -q '"off": *true' "$stage/etc/allium/node.json" && tor=no
	if [ "$tor" = yes ] && [ ! -x "$R/usr/sbin/tor" ]; then
		die "this container has no tor (/usr/sbin/tor), which the node's onion service runs: install it (apt-get install tor, yum install tor) and run install.sh again, or build the node with --no-tor"
	fi
	step init "/sbin/init.allium ($(payload_size init) bytes)"
	ADDED="/sbin/init.allium $ADDED"
	put init "$R/sbin/init.allium" 755
	if [ "$tor" = yes ] && ! grep -q '^debian-tor:' "$R/etc/passwd" 2>/dev/null; then
		step accounts "allium-tor in /etc/passwd and /etc/group (the old ones kept as .allium-orig)"
		add_user passwd allium-tor
		add_user group allium-tor
	fi
	ADDED="/etc/allium $ADDED"
	mv "$stage/etc/allium" "$R/etc/allium" || die "mv $stage/etc/allium $R/etc/allium failed"
	rm -rf "$stage"
	step links "/sbin/{$(echo "$TAKEOVER_LINKS" | tr ' ' ',')} -> init.allium (the old ones kept as .allium-orig)"
	for n in $TAKEOVER_LINKS; do
		[ "$n" = init ] && continue
		link "$n"
	done
	# The record, then /sbin/init: from its rename on, the container
	# starts Allium.
	{
		echo 'kept /sbin/init'
		for p in $KEPT; do printf 'kept %s\n' "$p"; done
		for p in $ADDED; do printf 'added %s\n' "$p"; done
	} >"$R/etc/allium/takeover" || die "write /etc/allium/takeover failed"
	link init
	sync
	ROLLBACK=
	step done "/sbin/init -> init.allium; /sbin/init.allium-orig ($KIND) is the way back (cloud uninstall $NODE)"
	takeover_switch
}

# takeover_switch asks the old init to restart the container; its
# manager (vzctl, lxc) then starts /sbin/init: Allium.
takeover_switch() {
	if [ "$SWITCH" = no ]; then
		step switch "skipped (--no-switch): $KIND runs until the container restarts (reboot, vzctl restart), then Allium"
		return
	fi
	if [ -n "$R" ] && [ -z "$BIN" ]; then
		step switch "skipped: ALLIUM_INSTALL_ROOT is set, and this machine's init is not the tree's"
		return
	fi
	step switch "asking $KIND to restart the container; Allium comes up in its place"
	case $KIND in
	systemd) sys systemctl reboot ;;
	sysvinit) "$R/sbin/init.allium-orig" 6 ;;
	busybox) sys kill -TERM 1 ;;
	esac || {
		printf 'install.sh: %s did not take the restart: restart the container yourself (vzctl restart CTID, lxc-stop -r, the panel); it comes back with Allium\n' "$KIND" >&2
		exit 1
	}
}

main() {
	MODE= PERMANENT=no SWITCH=yes
	for a in "$@"; do
		case $a in
		--dry-run) MODE=dry-run ;;
		--check) MODE=check ;;
		--yes) MODE=install ;;
		--permanent) PERMANENT=yes ;;
		--no-switch) SWITCH=no ;;
		--remove) MODE=remove ;;
		-h | --help) usage && exit 0 ;;
		*) echo "install.sh: unknown option $a" >&2 && usage >&2 && exit 2 ;;
		esac
	done
	if [ "$MODE" = remove ]; then
		echo "Allium node $NODE: removing a kexec install's files${R:+ from $R}"
		check_root
		[ -n "$FAILS" ] && die "refusing: $FAILS; nothing was changed"
		do_remove
	fi
	echo "Allium node $NODE ($BUNDLE_ARCH, built $BUILT): preflight${R:+ of $R}"
	PATHWAY=refuse
	check_payload
	check_root
	check_arch
	check_virt
	[ "$PATHWAY" = kexec ] && check_kexec
	[ "$PATHWAY$PERMANENT" = kexecyes ] && check_grub
	check_space
	check_rootfs
	check_net
	check_allium
	[ "$PATHWAY" = takeover ] && check_container
	if [ -n "$FAILS" ]; then
		echo "install.sh: refusing: $FAILS; nothing was changed" >&2
		exit 1
	fi
	case $MODE in
	check) exit 0 ;;
	dry-run)
		plan
		exit 0
		;;
	'')
		plan
		echo "install.sh: nothing was changed; run it again with --yes to do this"
		exit 0
		;;
	esac
	plan
	# From here on the install goes to its end even if the terminal or
	# the ssh connection that started it goes away.
	trap '' HUP PIPE
	case $PATHWAY in
	kexec) do_kexec ;;
	takeover) do_takeover ;;
	esac
}

main "$@"
exit
__PAYLOAD__
