// Package qemutests boots the real Allium appliance under QEMU and drives
// it with the real binaries, as an operator would: mkimage appliance
// builds it, mkimage qemu boots it, cloud talks to it. Nothing is faked
// and nothing runs in-process; every binary is a subprocess.
//
// # What it covers
//
//   - TestBootLifecycle, with a data disk: cloud info --json answers
//     (environment vm, persistent, boot count 1, the name, the booted
//     kernel's release); a client whose key the node never authorized is
//     refused, and so is a wrong --node-key by address; cloud reboot
//     reboots in place (same QEMU process, boot count 2); cloud poweroff
//     makes QEMU exit by itself and leaves the ext4 data disk clean
//     (dumpe2fs -h: no needs_recovery, state clean, no orphan list); the
//     next boot counts 3 and its console shows no ext4 recovery or orphan
//     lines; QEMU's system_powerdown (the ACPI button a VPS panel
//     presses) powers it off cleanly too.
//
//   - TestBootWithoutDataDisk, built with --no-data: it serves, says
//     persistent false with a warning, and cloud info shows persistence
//     OFF.
//
//   - TestApps, one appliance with a data disk and a port forwarded to a
//     container (mkimage qemu --forward), in steps that share it: a
//     busybox httpd image made by mkimage pack in the test is pushed by
//     cloud start and answers net/http through the forwarded port, and
//     cloud logs shows its output; cloud kill brings it back under a new
//     pid with one restart, and cloud events shows start, exit and
//     restart_scheduled; after cloud reboot it runs again and serves;
//     cloud stop keeps it stopped across a reboot, and cloud start of
//     the same file starts it without sending it again; a hard reset
//     (QEMU's system_reset) in the middle of an upload keeps what the
//     node had synced, lists no half image, and a later cloud start
//     resumes and runs it (cloud rm and rmi remove it); a hard reset in
//     the middle of an unpack of many small files likewise leaves no
//     half image, and pushing it again works; hostile archives (a ".."
//     entry, an escaping symlink, a write through a symlink) are refused
//     by cloud start naming the entry, while the httpd keeps serving.
//     Where a reset must land is found by polling the node's upload
//     offset (HEAD) with the test's own API client.
//
//   - BenchmarkBoot: what Allium adds over a bare kernel reaching /init
//     (internal/bareinit), in seconds to ready and in memory, with the
//     initramfs and init sizes. `make bench` runs it and prints a table.
//
//   - TestDebianGuest and BenchmarkDebianReboot: the real Debian 12 guest
//     that the installer tests take over (debguest_vm_test.go is its
//     harness, debimage_test.go its image). A debootstrap tree
//     (internal/testkit/debian) becomes a raw MBR disk with one ext4
//     root (sfdisk and mke2fs -d on the file, no loop device), booted
//     once with QEMU's -kernel and /sbin/allium-firstboot as init, which
//     lets udev name the NIC, writes a static /etc/network/interfaces
//     for that name, runs grub-install and update-grub and powers off.
//     From then on the image boots alone, SeaBIOS to GRUB to systemd.
//     It and root's ed25519 key are cached in
//     /var/cache/allium-test/qemu/debguest-HASH. Each boot runs a qcow2
//     overlay in a network namespace of its own, on a tap holding
//     10.77.0.1/24 (the guest is 10.77.0.2, no DHCP anywhere), so the
//     guest reaches nothing else and only commands run in that
//     namespace reach it. The test checks GRUB booted it, Debian 12, the
//     static address and route and no DHCP client, a synced file across
//     QMP system_reset, and a reboot over ssh; the benchmark prints the
//     seconds from ssh reboot to ssh answering again. The tree and the
//     image take minutes to build the first time and are found in
//     milliseconds after; a boot to ssh takes 40 to 60 s under TCG, a
//     reboot 60 to 120 s on a loaded machine.
//
// It does not cover tor or kexec, and asserts no timing: deadlines are
// generous (90 s to a first answer, 60 s for a container or the httpd)
// because TCG on a shared 2-core runner is slow and noisy. Timings live
// in the benchmark.
//
// # Running it
//
// The tier is off unless ALLIUM_QEMU_TESTS=1, so `go test ./...` skips it
// on a laptop; it also skips when qemu-system-x86_64 or a /boot/vmlinuz-*
// with its modules in /lib/modules is missing. `make test` turns it on.
// By hand:
//
//	ALLIUM_QEMU_TESTS=1 go test -count=1 -v ./qemu-tests/
//	make build && ALLIUM_QEMU_TESTS=1 ALLIUM_BIN=$PWD/out go test -count=1 -v ./qemu-tests/
//	make bench                      # or, for this benchmark alone:
//	ALLIUM_QEMU_TESTS=1 ALLIUM_BENCH_ROUNDS=3 go test -run '^$' -bench Boot -benchtime 1x ./qemu-tests/
//
// The Debian guest also needs the root tier (ALLIUM_ROOT_TESTS=1, as
// root: network namespaces, taps, debootstrap) and debootstrap, sfdisk,
// qemu-img and ssh (tools/deps.sh installs them); its first build
// fetches packages from deb.debian.org:
//
//	ALLIUM_QEMU_TESTS=1 ALLIUM_ROOT_TESTS=1 go test -count=1 -run TestDebianGuest -v ./qemu-tests/
//	ALLIUM_QEMU_TESTS=1 ALLIUM_ROOT_TESTS=1 go test -run '^$' -bench DebianReboot -benchtime 1x ./qemu-tests/
//
// With ALLIUM_BIN=DIR the tests use DIR/init, DIR/cloud and DIR/mkimage;
// without it they build them once per run with CGO_ENABLED=0 go build
// -trimpath. The tests run in parallel, each VM on its own free port, with
// its own client config (mkimage appliance --config) in a temporary
// directory. TestApps needs busybox-static (/bin/busybox) for its images. The boots use TCG, mkimage qemu's default.
//
// # Replaying a failure
//
// Every boot logs the exact QEMU command line, which `mkimage qemu
// --dry-run` printed, and a failing test logs the tail of the serial
// console and of QEMU's output. To replay, rebuild the appliance the test
// logged (its `mkimage appliance ...` line, with -o and --config pointing
// somewhere that survives the test) and run the logged QEMU line, or
// `mkimage qemu DIR --port PORT`, with the serial console on stdio:
//
//	out/mkimage appliance --name life -o /tmp/life --config /tmp/life-cfg --port 17707 --append loglevel=7
//	out/mkimage qemu /tmp/life --port 17707        # or paste the logged qemu-system-x86_64 line
//	out/cloud --config /tmp/life-cfg info life --json
//
// The logged line names files in the test's temporary directory, which
// is gone once the test ends; substitute your own directory for it.
package qemutests
