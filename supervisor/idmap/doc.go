// Package idmap gives each container at the userns rung a range of host
// uids and gids of its own, and its files the owners that range needs.
//
// A container's uid 0 is host uid Range.Base, its uid N host uid
// Base+N, for N below Size (65536, the ids an image can name). Ranges
// are handed out from First up, one per container, never shared, and
// recorded with the container in state.db, so that they outlive a
// reboot (the files of its writable layer and volumes carry them).
//
// The image a container runs is shared with every other container of
// that image and owned as the image says (root files are host uid 0).
// Where the kernel has idmapped mounts on the data root's filesystem
// (Linux 5.12 for ext4 and xfs; overlayfs on idmapped layers since
// 5.19), the container's overlay has as its lower layer an idmapped
// bind of the image (Mapper.Bind): no file of the image is touched,
// and each container sees it owned by its own range. Where it has not,
// the container gets a copy of the image with owners shifted into its
// range (Shift): the range stays its own, and the cost is the image's
// size on disk per container. One shifted image shared by a node-wide
// range would cost less disk, but containers would then share a range
// and could reach each other's files and processes as the same host
// user; a node lacking idmapped mounts is old enough to be rare.
//
// The writable layer and the volumes are owned by the range itself
// (shifted once, when a container first runs at the userns rung or
// moves to a new range). The package starts only the short-lived
// holder of a user namespace (HoldMain, "init userns"), through the
// caller's Starter.
package idmap
