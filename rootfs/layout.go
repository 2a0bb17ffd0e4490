package rootfs

import "io/fs"

// Dir is a directory of the initramfs.
type Dir struct {
	Path string
	Mode fs.FileMode
}

// Dirs are the directories mkimage creates in the initramfs, parents
// first. The mount points of Mounts are among them.
var Dirs = []Dir{
	{"/dev", 0o755},
	{"/etc", 0o755},
	{ConfigDir, 0o700},
	{"/lib", 0o755},
	{"/lib/modules", 0o755},
	{"/proc", 0o555},
	{"/run", 0o755},
	{"/sbin", 0o755},
	{"/sys", 0o555},
	{"/tmp", 0o1777},
	{"/var", 0o755},
	{"/var/lib", 0o755},
	{DataDir, 0o700},
}

// Symlinks maps a path in the initramfs to its target. The init binary
// lives at /init (where the kernel looks first); the others name it so
// that the kernel's orderly_poweroff (/sbin/poweroff, used by Xen) and an
// operator's habits reach it.
var Symlinks = map[string]string{
	"/sbin/init":     "../init",
	"/sbin/poweroff": "../init",
	"/sbin/reboot":   "../init",
}
