package qemutests

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"allium/internal/testkit/debian"
)

// The Debian guest's fixed identity. Its NIC sits in a fixed PCI slot
// with a fixed MAC, so its predictable name (found at the first boot) is
// the same on every boot of every overlay.
const (
	debImageVersion = 2 // bump when the image is built differently
	debRootUUID     = "7a11c0de-d0e5-4b00-8000-000000000d06"
	debMAC          = "52:54:00:a1:1d:02"
	debNICSlot      = "0x3"
	debDiskSlot     = "0x4"
	debAddr         = "10.77.0.2"
	debGateway      = "10.77.0.1"
	debPrefix       = "24"
	debHostname     = "debguest"
	debDiskBytes    = 2 << 30
	debPartStart    = 1 << 20
	debMem          = "1024"
	firstbootOK     = "ALLIUM_FIRSTBOOT_OK"
	firstbootFail   = "ALLIUM_FIRSTBOOT_FAIL"
	firstbootWithin = 15 * time.Minute
	debBuildWithin  = 30 * time.Minute
)

// debRecipe is a small Debian 12 as a VPS provider ships one: GRUB on
// the MBR, systemd, ifupdown with a static address, sshd for root by key
// only, a serial console, and no DHCP client at all.
var debRecipe = debian.Recipe{
	Suite:   "bookworm",
	Variant: "minbase",
	Include: []string{"linux-image-cloud-amd64", "grub-pc", "systemd-sysv", "udev", "ifupdown",
		"iproute2", "openssh-server"},
	Setup: `echo ` + debHostname + ` >/etc/hostname
printf '127.0.0.1\tlocalhost\n127.0.1.1\t` + debHostname + `\n' >/etc/hosts
echo 'UUID=` + debRootUUID + ` / ext4 errors=remount-ro 0 1' >/etc/fstab
echo 'nameserver ` + debGateway + `' >/etc/resolv.conf
sed -i -e 's/^GRUB_TIMEOUT=.*/GRUB_TIMEOUT=1/' \
	-e 's/^GRUB_CMDLINE_LINUX_DEFAULT=.*/GRUB_CMDLINE_LINUX_DEFAULT=""/' \
	-e 's/^GRUB_CMDLINE_LINUX=.*/GRUB_CMDLINE_LINUX="console=ttyS0"/' /etc/default/grub
# GRUB_RECORDFAIL_TIMEOUT: after a boot that did not finish (a reset
# does that), Debian's GRUB would wait 30 s at its menu.
cat >>/etc/default/grub <<'END'
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_RECORDFAIL_TIMEOUT=1
END
cat >/etc/ssh/sshd_config.d/allium-test.conf <<'END'
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
END
# Nothing to fetch from: the guest reaches only the test's namespace.
systemctl disable apt-daily.timer apt-daily-upgrade.timer
# Now that fstab names the root, the initramfs gets its fsck, as on an
# installed system (FSTYPE: the hook cannot probe a root not mounted yet).
FSTYPE=ext4 update-initramfs -u
`,
}

// debFirstboot is PID 1 of the image's only direct-kernel boot: it lets
// udev name the NIC, writes the static network for that name, installs
// GRUB on the MBR and powers off. Every later boot goes SeaBIOS, GRUB,
// systemd.
const debFirstboot = `#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
# Powers off with / clean: from a new shell, since this script, open
# until it ends, keeps a read-only remount busy once it is deleted.
off() { exec /bin/sh -c 'kill -TERM -1; sleep 1; sync; mount -o remount,ro /; sync; echo o >/proc/sysrq-trigger; sleep 60'; }
fail() { echo "` + firstbootFail + `: $*"; off; }
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mountpoint -q /run || mount -t tmpfs tmpfs /run
mount -o remount,rw / || fail "remount / rw"
/lib/systemd/systemd-udevd --daemon || fail "systemd-udevd"
udevadm trigger --action=add
udevadm settle --timeout=120 || fail "udevadm settle"
dev=
for d in /sys/class/net/*; do
	[ "$(cat "$d/address")" = "` + debMAC + `" ] && dev=${d##*/}
done
[ -n "$dev" ] || fail "no interface has MAC ` + debMAC + `: $(ls /sys/class/net)"
case $dev in eth*) fail "$dev: udev gave it no predictable name" ;; esac
cat >/etc/network/interfaces <<END
# interfaces(5) file used by ifup(8) and ifdown(8)
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

auto $dev
iface $dev inet static
	address ` + debAddr + `/` + debPrefix + `
	gateway ` + debGateway + `
	dns-nameservers ` + debGateway + `
END
grub-install /dev/vda || fail "grub-install /dev/vda"
update-grub || fail "update-grub"
udevadm control --exit
rm -f /sbin/allium-firstboot
echo "` + firstbootOK + ` dev=$dev"
off
`

// debImage is the cached, booted-once Debian disk: a raw MBR disk whose
// first partition (ext4, from 1 MiB) is the root, GRUB installed, and the
// key that logs in as root beside it.
type debImage struct {
	dir  string // the cache entry
	disk string // disk.raw: never written once cached; boot overlays
	key  string // id_ed25519, root's key
	dev  string // the NIC's name in the guest, e.g. enp0s3
}

var debImg struct {
	mu  sync.Mutex
	img *debImage
}

// debImageKey names the image in the cache: the tree's key, this file's
// version, and everything the image build adds to the tree.
func debImageKey() string {
	h := sha256.New()
	fmt.Fprintf(h, "v%d\n%s\n%s\n%s %s %s %s %d %s", debImageVersion, debRecipe.Key(), debFirstboot,
		debRootUUID, debMAC, debNICSlot, debDiskSlot, debDiskBytes, debMem)
	return "debguest-" + hex.EncodeToString(h.Sum(nil)[:8])
}

// getDebImage returns the cached image, building the tree and the image
// when they are missing (minutes the first time, under a lock shared with
// other test processes).
func getDebImage(tb testing.TB) *debImage {
	tb.Helper()
	debImg.mu.Lock()
	defer debImg.mu.Unlock()
	if debImg.img != nil {
		return debImg.img
	}
	ctx, cancel := context.WithTimeout(context.Background(), debBuildWithin)
	defer cancel()
	start := time.Now()
	dir, err := debian.Cached(ctx, filepath.Join(debian.Root, "qemu"), debImageKey(), tb.Logf,
		func(ctx context.Context, tmp string) error { return buildDebImage(ctx, tb, tmp) })
	if err != nil {
		tb.Fatalf("debian guest image: %v", err)
	}
	dev, err := os.ReadFile(filepath.Join(dir, "dev"))
	if err != nil {
		tb.Fatalf("debian guest image %s: %v", dir, err)
	}
	img := &debImage{dir: dir, disk: filepath.Join(dir, "disk.raw"), key: filepath.Join(dir, "id_ed25519"),
		dev: strings.TrimSpace(string(dev))}
	tb.Logf("debian guest image %s (NIC %s) ready in %.1f s", dir, img.dev, time.Since(start).Seconds())
	debImg.img = img
	return img
}

// buildDebImage makes the image in tmp: the tree with root's key and the
// first-boot script, as ext4 in a partitioned raw disk, booted once.
func buildDebImage(ctx context.Context, tb testing.TB, tmp string) error {
	tree, err := debian.Tree(ctx, debRecipe, tb.Logf)
	if err != nil {
		return err
	}
	key := filepath.Join(tmp, "id_ed25519")
	if err := runQuiet(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "allium-test@"+debHostname, "-f", key); err != nil {
		return err
	}
	root := filepath.Join(tmp, "root")
	if err := debian.Copy(tree, root); err != nil {
		return err
	}
	if err := addDebFiles(root, key+".pub"); err != nil {
		return err
	}
	disk := filepath.Join(tmp, "disk.raw")
	if err := makeDebDisk(ctx, disk, root); err != nil {
		return err
	}
	if err := os.RemoveAll(root); err != nil {
		return err
	}
	dev, err := firstboot(ctx, tb, tree, tmp, disk)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(tmp, "dev"), []byte(dev+"\n"), 0o644)
}

// addDebFiles puts root's authorized key and the first-boot script into
// the copied tree.
func addDebFiles(root, pub string) error {
	key, err := os.ReadFile(pub)
	if err != nil {
		return err
	}
	ssh := filepath.Join(root, "root/.ssh")
	if err := os.MkdirAll(ssh, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(ssh, "authorized_keys"), key, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, "sbin/allium-firstboot"), []byte(debFirstboot), 0o755)
}

// makeDebDisk writes a sparse raw disk with an MBR and one bootable
// Linux partition from 1 MiB, and an ext4 holding root in it, without
// loop devices: sfdisk and mke2fs work on the file.
func makeDebDisk(ctx context.Context, disk, root string) error {
	f, err := os.Create(disk)
	if err != nil {
		return err
	}
	err = f.Truncate(debDiskBytes)
	f.Close()
	if err != nil {
		return err
	}
	table := fmt.Sprintf("label: dos\nstart=%d, type=83, bootable\n", debPartStart/512)
	sfdisk := exec.CommandContext(ctx, "sfdisk", "--quiet", disk)
	sfdisk.Stdin = strings.NewReader(table)
	if out, err := sfdisk.CombinedOutput(); err != nil {
		return fmt.Errorf("sfdisk %s: %w: %s", disk, err, strings.TrimSpace(string(out)))
	}
	sizeK := fmt.Sprintf("%dk", (debDiskBytes-debPartStart)/1024)
	return runQuiet(ctx, "mke2fs", "-q", "-F", "-t", "ext4", "-L", "root", "-U", debRootUUID,
		"-E", fmt.Sprintf("offset=%d", debPartStart), "-d", root, disk, sizeK)
}

// firstboot boots disk once with the tree's kernel and initramfs and
// /sbin/allium-firstboot as init, and returns the NIC's name it found.
// Its NIC is on a hub with nothing else: it reaches nothing.
func firstboot(ctx context.Context, tb testing.TB, tree, tmp, disk string) (string, error) {
	kernel, initrd, err := treeKernel(tree)
	if err != nil {
		return "", err
	}
	serial := filepath.Join(tmp, "firstboot.serial")
	args := append(debQEMUArgs(serial, "file="+disk+",format=raw"),
		"-netdev", "hubport,id=n0,hubid=0", "-no-reboot",
		"-kernel", kernel, "-initrd", initrd,
		"-append", "root=UUID="+debRootUUID+" rw console=ttyS0 panic=-1 init=/sbin/allium-firstboot")
	tb.Logf("debian guest first boot: %s %s", qemu, strings.Join(args, " "))
	ctx, cancel := context.WithTimeout(ctx, firstbootWithin)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, args...)
	dieWithTest(cmd)
	out, err := cmd.CombinedOutput()
	console := readFile(serial)
	if err != nil {
		return "", fmt.Errorf("first boot: %s: %w: %s\nserial console, last lines:\n%s", qemu, err, out, tail(console, 40))
	}
	m := regexp.MustCompile(firstbootOK + ` dev=(\S+)`).FindStringSubmatch(console)
	if m == nil {
		return "", fmt.Errorf("first boot: QEMU exited without %s; serial console, last lines:\n%s", firstbootOK, tail(console, 40))
	}
	if err := cleanExt4(ctx, fmt.Sprintf("%s?offset=%d", disk, debPartStart)); err != nil {
		return "", fmt.Errorf("first boot: %w; serial console, last lines:\n%s", err, tail(console, 20))
	}
	return m[1], nil
}

// cleanExt4 fails unless dumpe2fs -h says img was unmounted cleanly: every
// boot of the image would otherwise begin with a journal recovery.
func cleanExt4(ctx context.Context, img string) error {
	out, err := exec.CommandContext(ctx, "dumpe2fs", "-h", img).Output()
	if err != nil {
		return fmt.Errorf("dumpe2fs -h %s: %w", img, err)
	}
	f := dumpe2fsFields(string(out))
	if f["Filesystem state"] != "clean" || strings.Contains(f["Filesystem features"], "needs_recovery") {
		return fmt.Errorf("dumpe2fs -h %s: state %q, features %q: want clean, no needs_recovery",
			img, f["Filesystem state"], f["Filesystem features"])
	}
	return nil
}

// treeKernel finds the one kernel and initramfs in tree/boot.
func treeKernel(tree string) (kernel, initrd string, err error) {
	ks, _ := filepath.Glob(filepath.Join(tree, "boot/vmlinuz-*"))
	if len(ks) != 1 {
		return "", "", fmt.Errorf("%s/boot: %d kernels (%v), want 1", tree, len(ks), ks)
	}
	initrd = filepath.Join(tree, "boot/initrd.img-"+strings.TrimPrefix(filepath.Base(ks[0]), "vmlinuz-"))
	if _, err := os.Stat(initrd); err != nil {
		return "", "", err
	}
	return ks[0], initrd, nil
}

// debQEMUArgs are the flags every boot of the guest shares: TCG, the
// disk and NIC in fixed slots, the serial console to a file. The caller
// adds the netdev n0.
func debQEMUArgs(serial, drive string) []string {
	return []string{"-nodefaults", "-no-user-config", "-display", "none",
		"-machine", "q35", "-cpu", "max", "-accel", "tcg", "-m", debMem,
		"-serial", "file:" + serial,
		"-drive", drive + ",if=none,id=d0,cache=unsafe",
		"-device", "virtio-blk-pci,drive=d0,addr=" + debDiskSlot,
		"-device", "virtio-net-pci,netdev=n0,mac=" + debMAC + ",addr=" + debNICSlot,
	}
}

// runQuiet runs a command, returning its output in the error if it fails.
func runQuiet(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
