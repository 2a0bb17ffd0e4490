//go:build !linux

package cgroup

func detect(root string) (int, error) {
	return 0, &Error{Op: "open", Path: root, Err: ErrUnsupported}
}

func isV1Mount(string) bool { return false }

func sigkill(int) error { return ErrUnsupported }

func errText(err error) string { return err.Error() }
