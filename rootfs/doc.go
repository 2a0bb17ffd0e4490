// Package rootfs describes the appliance's filesystem as data: the early
// mount table, the well-known paths, the baked node configuration, and the
// kernel modules that go into the initramfs.
//
// init reads these tables to mount and to find its configuration; mkimage
// reads the same tables to lay out the initramfs. rootfs performs no I/O of
// its own beyond parsing and rendering what it describes: mounting belongs
// to init, writing images belongs to mkimage.
package rootfs
