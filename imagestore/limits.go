package imagestore

import (
	"time"
)

// Limits caps what one archive may unpack to. The zero value allows
// nothing (no entries, no bytes); start from DefaultLimits.
type Limits struct {
	// MaxBytes caps the total bytes of file data written; 0 allows
	// only empty files.
	MaxBytes int64
	// MaxEntries caps the number of tar entries, manifest.json
	// included; 0 allows none.
	MaxEntries int
	// MaxRatio caps the compression ratio: the bytes of tar read so
	// far over the compressed bytes read so far, checked once the tar
	// is past RatioGrace bytes. 0 allows no compressed archive past
	// the grace.
	MaxRatio int
	// AllowDevices lets a manifest with allow.devices have device
	// nodes; false refuses them whatever the manifest says.
	AllowDevices bool
	// AllowSetuid lets a manifest with allow.setuid have setuid and
	// setgid files; false refuses them whatever the manifest says.
	AllowSetuid bool
}

// Defaults of DefaultLimits.
const (
	// DefaultMaxEntries is about ten times a Debian rootfs.
	DefaultMaxEntries = 250_000
	// DefaultMaxRatio is far above what real images compress to (xz
	// of a rootfs: 3-5:1; text: 10-20:1) and far below a bomb's.
	DefaultMaxRatio = 100
	// RatioGrace is how much tar is read before the ratio counts, so
	// that a small, very compressible start is not a bomb.
	RatioGrace = 8 << 20
	// minReserve is kept free on the data disk whatever the upload
	// (state.db, logs, the next boot): a few times what they use (a
	// state.db of a few MiB, 5 MiB of logs per container), and small
	// enough that a 256 MiB data disk still takes images.
	minReserve = 32 << 20
)

// DefaultLimits are the limits for an archive unpacked onto a disk with
// freeDisk bytes free: MaxBytes leaves a reserve of 32 MiB plus 5% of
// the free space, so that an image never fills the disk that state.db
// and the logs live on. Devices and setuid files are refused.
func DefaultLimits(freeDisk int64) Limits {
	return Limits{
		MaxBytes:   max(0, freeDisk-reserve(freeDisk)),
		MaxEntries: DefaultMaxEntries,
		MaxRatio:   DefaultMaxRatio,
	}
}

// reserve is the part of freeDisk that uploads and images must leave.
func reserve(freeDisk int64) int64 {
	return minReserve + max(0, freeDisk)/20
}

// Stats describe one unpacking.
type Stats struct {
	// Entries is the number of tar entries read.
	Entries int
	// Bytes is the file data written.
	Bytes int64
	// Duration is the wall time of Unpack.
	Duration time.Duration
}
