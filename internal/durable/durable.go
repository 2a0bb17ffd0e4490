// Package durable holds what makes a change to a directory survive a
// power loss, shared by the parts that write files on the node and by
// the tests' caches.
package durable

import "os"

// SyncDir fsyncs a directory, so that a file created, renamed or removed
// in it survives a power loss (the file's own data is synced apart).
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
