package testkit

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestExt4(t *testing.T) {
	NeedRoot(t)
	mnt := Ext4(t, 32<<20)
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != unix.EXT4_SUPER_MAGIC {
		t.Errorf("Ext4(t, 32 MiB) is a filesystem of type %#x, want ext4 (%#x)", st.Type, unix.EXT4_SUPER_MAGIC)
	}
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("x"), 0o644); err != nil {
		t.Errorf("writing to Ext4's mount: %v", err)
	}
}
