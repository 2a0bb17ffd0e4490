#!/bin/sh
# Installs the system packages Allium's build, demo and tests need, when
# any is missing. Debian or Ubuntu, as root; the package registry is the
# only network it uses.
set -eu

packages="qemu-system-x86 linux-image-cloud-amd64 tor busybox-static e2fsprogs python3 cpio util-linux iproute2 libarchive-tools crun qemu-user-static debootstrap qemu-utils fdisk openssh-client"

missing=""
for p in $packages; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "deps: missing packages:$missing" >&2
		echo "deps: run as root, or: sudo apt-get install -y$missing" >&2
		exit 1
	fi
	echo "deps: installing$missing"
	apt-get update -q
	# Install without starting services: Debian's tor package would
	# otherwise start a system tor that joins the real Tor network. The
	# tests run their own tors on 127.0.0.1 only.
	policy=/usr/sbin/policy-rc.d
	made_policy=""
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		made_policy=1
	fi
	status=0
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing || status=$?
	if [ -n "$made_policy" ]; then
		rm -f "$policy"
	fi
	[ "$status" = 0 ] || exit "$status"
fi

if ! command -v go >/dev/null 2>&1; then
	echo "deps: no Go toolchain on PATH; Allium needs Go 1.26 or newer (https://go.dev/dl/, or /usr/local/go/bin)" >&2
	exit 1
fi
