// Command mkimage builds Allium appliance images and boots them under
// QEMU, and makes the container images the appliance runs.
//
//	mkimage appliance --name web1 -o out/web1   # kernel, initramfs, data disk, keys, alias
//	mkimage qemu out/web1                      # boot it; the API is on 127.0.0.1:7707
//	mkimage pack ./rootfs -o app.txz --cmd "/bin/httpd -f -p 8080"
//	mkimage pack --binary /usr/bin/prog -o prog.tar.zst
//
// # What it owns
//
//   - The appliance directory: vmlinuz (a copy of the kernel), initrd.img
//     (a reproducible newc cpio, written by cpio.go), data.img (an ext4
//     disk made by mkfs.ext4), disk.img (the PyGrub disk: an MBR written
//     by mbr.go, one ext4 partition made by mke2fs -d with /boot, its
//     menu.lst and grub.cfg from bootmenu.go, and the node's data; a
//     rebuild replaces only /boot, through debugfs), cmdline, node.key,
//     onion.key and node.json.
//   - install.sh (install.go): the embedded POSIX sh preflight and plan,
//     with vmlinuz, initrd.img and init appended after a __PAYLOAD__
//     line, their sizes and sha256 recorded in its header.
//   - The check that the kernel's compression is one Xen's domain
//     builder decodes (kernel_payload.go).
//   - The initramfs layout: it executes the tables of package rootfs
//     (Dirs, Symlinks, Modules, Users) and adds /dev/console, /init, the
//     baked files under /etc/allium, /etc/passwd and /etc/group.
//   - The tor closure (tor.go): the build host's tor or --tor, its loader
//     and its libraries, found by the same ELF resolver as pack --binary,
//     at their host paths, with links where a merged /usr host's /lib
//     symlink meets the initramfs's real /lib.
//   - The node's identity at build time: node.key and onion.key are made
//     once and reused by every rebuild, so the alias and the .onion
//     address stay valid.
//   - The client side of a new node: the client's TLS and x25519 keys
//     (made on first use) and the alias, through api.Config and
//     hiddenservice's key files.
//   - The QEMU command line for local boots (qemu.go, a pure function).
//   - Writing native container images (pack*.go): manifest.json first,
//     built as a manifest.Manifest and checked with manifest.Parse, then
//     rootfs/, sorted and reproducible; from a directory, or from one
//     program and the loader and libraries its ELF headers name (elf.go:
//     PT_INTERP, DT_NEEDED, RPATH/RUNPATH with $ORIGIN, the system library
//     directories; no ldd, no ld.so.cache). xz and zstd are written as
//     independent blocks (pack_xz.go, pack_compress.go) that a reader can
//     decompress in parallel.
//
// # What it does not own
//
//   - What the files mean at run time: init reads node.json,
//     modules.order and the keys; rootfs defines their format and api the
//     key and alias formats. mkimage only writes them.
//   - The kernel: it ships one already built (Debian's cloud kernel), and
//     takes the module list from rootfs.Modules.
//   - Booting QEMU in tests: qemu-tests does that, with its own waits.
//   - Reading container images: imagestore validates and unpacks them on
//     the node; pack only promises that manifest.Parse accepts its
//     manifest. Whether setuid bits, device nodes or FIFOs are accepted
//     is the node's decision.
//   - Running tor: init does, through hiddenservice, with the baked key.
//   - Not yet: the install bundle's takeover (install.sh checks and
//     plans, and changes nothing), and OCI images
//     (from-oci), which is mkimage's too.
//
// # Dependencies
//
//   - github.com/spf13/cobra: subcommands, flags and --help with examples.
//   - github.com/klauspost/compress: gzip and zstd for the initramfs; its
//     zstd is the maintained pure-Go encoder, and its gzip is faster than
//     the standard library's at the same output format.
//   - github.com/ulikunitz/xz: xz for the initramfs, the only pure-Go xz
//     writer; it can write the CRC32 check the kernel's decoder requires
//     (xz's default, CRC64, is rejected by the kernel). Images use only its
//     LZMA2 encoder (xz/lzma): its Writer cuts blocks but writes no sizes
//     in their headers, which parallel readers need (xz -T since 5.4, or
//     an unpacker that cuts at block headers), so pack_xz.go writes the
//     container itself. Its matcher is weaker than liblzma's: Python's
//     standard library packs to 13.2 MB against xz -6's 10.3 MB, about
//     what zstd gives at its best level three times faster.
//   - github.com/klauspost/compress/zstd: image frames, one per block via
//     EncodeAll (its streaming Encoder writes a single frame).
//   - github.com/mholt/archives: the bzip2 and lz4 writers of images, and
//     in tests the reader, the same one the node and cloud use, so a test
//     reads an image as they will.
//   - mkfs.ext4 (e2fsprogs), run as a program: writing ext4 by hand is
//     not worth it, and it needs no root on a regular file.
//   - qemu-system-x86_64 (qemu-system-x86), exec'd by `mkimage qemu`.
//
// The cpio writer is our own: the format is small, and the library
// candidates either cannot write device nodes (cavaliergopher/cpio has no
// rdev) or bring a large module (u-root).
package main
