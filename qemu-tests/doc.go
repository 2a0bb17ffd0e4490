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
//   - TestBootWithoutDataDisk, built with --no-data: it serves, says
//     persistent false with a warning, and cloud info shows persistence
//     OFF.
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
//   - BenchmarkBoot: what Allium adds over a bare kernel reaching /init
//     (internal/bareinit), in seconds to ready and in memory, with the
//     initramfs and init sizes. `make bench` runs it and prints a table.
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
