package debian

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
)

// Version is part of every key: bump it when a change to this package
// builds trees differently, so that the old ones are no longer found.
const Version = 1

// Mirror is where debootstrap fetches from: the mirror apt uses.
const Mirror = "http://deb.debian.org/debian"

// Recipe says what a tree holds.
type Recipe struct {
	// Suite is the Debian release, e.g. "bookworm". It must not be "".
	Suite string
	// Variant is debootstrap's --variant, e.g. "minbase"; "" is
	// debootstrap's default (required and important packages).
	Variant string
	// Include are extra packages (debootstrap --include), with their
	// dependencies but not their recommendations. Their order does not
	// matter; nil adds none.
	Include []string
	// Setup is a sh script (run with sh -e) chrooted in the tree after
	// debootstrap, with /proc, /sys and /dev mounted and no service
	// allowed to start. "" runs nothing.
	Setup string
}

// Key names r's tree in the cache: SUITE-VARIANT-HASH, where HASH covers
// everything that changes the tree (the recipe, Mirror and Version).
func (r Recipe) Key() string {
	inc := slices.Clone(r.Include)
	slices.Sort(inc)
	inc = slices.Compact(inc)
	// JSON keeps the fields apart: no two recipes encode alike.
	b, _ := json.Marshal(struct {
		Version                int
		Mirror, Suite, Variant string
		Include                []string
		Setup                  string
	}{Version, Mirror, r.Suite, r.Variant, inc, r.Setup})
	sum := sha256.Sum256(b)
	variant := r.Variant
	if variant == "" {
		variant = "default"
	}
	return r.Suite + "-" + variant + "-" + hex.EncodeToString(sum[:8])
}
