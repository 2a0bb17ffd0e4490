// Package imagestore receives images: streaming and resumable uploads with sha256 digests, safe
// unpacking (in the `init unpack` helper process), the content-addressed
// store of unpacked images, and garbage collection.
//
// It knows nothing of the supervisor, HTTP or bbolt: callers hand it
// readers and directories and get back digests, manifests and paths.
//
// # What it owns
//
//   - Unpacking (unpack_linux.go, tree_linux.go, pipe.go): Unpack reads a
//     tar, compressed or not, and writes dst/rootfs and dst/manifest.json,
//     refusing hostile entries with an error naming the entry (the rules
//     are on Unpack). Limits caps bytes, entries and the compression
//     ratio.
//   - The helper protocol (helper.go, helper_linux.go): PID 1 never
//     unpacks itself. Helper re-executes the binary as `init unpack`,
//     whose HelperMain chroots into the staging directory, sets
//     no_new_privs, cuts capabilities to the five it needs and sets
//     rlimits, then runs Unpack. The diagram is in helper.go. InProcess
//     unpacks in the caller, for tests and tools.
//   - The store (store.go, store_images.go): uploads to
//     ROOT/uploads/HEX.part, unpacking into ROOT/staging, and images in
//     ROOT/images/HEX that appear by one rename; Write, Offset, Has,
//     Image, List, Manifest, RootFS, Remove, GC.
//   - Partial uploads (parts.go): listed (Partials), removed with their
//     digest (Remove), dropped after PartMaxAge untouched (ExpireParts;
//     a day by default, with a clock seam for tests).
//   - The data disk's space (space.go): an upload reserves what it has
//     still to write when it starts, under the store's lock, and is
//     refused (ErrTooLarge) before a byte of its body is read when that
//     does not fit beside the other uploads in flight and the floor
//     (32 MiB and 5% of the free space) that uploads and images leave
//     for state.db, the logs and the next boot. Disk reports the space,
//     inodes and reservations. A disk that fills up anyway (something
//     else wrote to it) fails the upload with ErrNoSpace and drops its
//     part. Once every byte of an upload is in, the caller's context no
//     longer stops it: a client whose connection drops after its last
//     byte finds the image unpacked when it asks again.
//   - state.db's reserve (Preallocate): space kept allocated past a
//     file's end with fallocate(FALLOC_FL_KEEP_SIZE), which bbolt grows
//     into and rewrites in place on a disk with 0 bytes free; the
//     caller (init/apps) restores it whenever space may have come back.
//     The choice over a floor alone: a container's writes are not
//     uploads and can take the whole disk; blocks allocated to state.db
//     cannot be taken.
//
// # What it does not own
//
// The HTTP protocol of uploads and its status codes (api, which maps the
// sentinels of errors.go), deciding which images are in use (GC asks),
// the containers' roots made from an image (init, supervisor), the reaper
// that starts and waits for the helper (init passes it as Helper.Start),
// and the node's policy on devices and setuid files (the caller's
// Store.Limits; DefaultLimits refuses both).
//
// # Dependencies
//
//   - github.com/mholt/archives identifies the compression from the
//     stream (Identify) and decompresses it (Decompressor), so that every
//     format the image format promises works: xz (github.com/mikelolasagasti/xz,
//     a port of XZ Embedded that caps the dictionary at 64 MiB, ~1.4x
//     faster than ulikunitz/xz), gzip and zstd
//     (github.com/klauspost/compress), bzip2 (github.com/dsnet/compress),
//     lz4 (github.com/pierrec/lz4), lzip, brotli, snappy, minlz and zlib.
//     It registers every format it knows in init(), so all of them link
//     in, with zip, 7z (bodgit/sevenzip, which brings go4.org/readerutil
//     and with it expvar), rar and, through brotli, net/http. Measured
//     with CGO_ENABLED=0 -trimpath -ldflags='-s -w' on Go 1.26.8: a tiny
//     main that reads a tar grows from 1,851,554 to 5,943,458 bytes
//     (+4.09 MB) when it also calls archives.Identify; a main that
//     already links net/http, crypto/tls, bbolt and klauspost's zstd and
//     gzip (as init does) grows from 6,762,658 to 8,499,362 bytes
//     (+1.74 MB). Using the decoders directly would cost about 0.3 MB
//     (measured on this code's build machine) at the price of our own format
//     sniffing.
//   - golang.org/x/sys/unix for the *at system calls below an os.Root,
//     statfs and syncfs, and the helper's chroot, prctl, capset and
//     rlimits.
//
// # Speed
//
// The decompressor runs in its own goroutine, feeding the tar reader
// through a bounded pipe of 1 MiB chunks, so that it overlaps the file
// writes; below rootfs each operation is one system call on a cached
// directory descriptor. BenchmarkUnpack compares Unpack with
// `bsdtar -xf` in the same run.
package imagestore
