package debian

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Tree returns the directory of r's tree in the cache, building it when
// it is missing (see the package doc). Callers must not modify the tree;
// Copy it first. logf, which may be nil, hears about waiting and building
// (t.Logf fits).
func Tree(ctx context.Context, r Recipe, logf func(string, ...any)) (string, error) {
	if r.Suite == "" {
		return "", errors.New("debian: recipe without a suite")
	}
	dir := filepath.Join(Root, "debian")
	key := r.Key()
	return Cached(ctx, dir, key, logf, func(ctx context.Context, tmp string) error {
		log, err := os.Create(filepath.Join(dir, key+".log"))
		if err != nil {
			return fmt.Errorf("debian: %w", err)
		}
		defer log.Close()
		if err := debootstrap(ctx, r, dir, tmp, log); err != nil {
			return err
		}
		// The .debs are in debs/ already; a tree does not need its own.
		debs, _ := filepath.Glob(filepath.Join(tmp, "var/cache/apt/archives/*.deb"))
		for _, d := range debs {
			os.Remove(d)
		}
		return setup(ctx, r, tmp, log)
	})
}

// debootstrap runs debootstrap into tmp, with the shared .deb cache under
// dir held for it alone (two debootstraps would write the same files).
func debootstrap(ctx context.Context, r Recipe, dir, tmp string, log *os.File) error {
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return errors.New("debian: debootstrap is not installed (tools/deps.sh installs it)")
	}
	debs := filepath.Join(dir, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return fmt.Errorf("debian: %w", err)
	}
	unlock, err := lock(ctx, debs+".lock", nil)
	if err != nil {
		return err
	}
	defer unlock()
	args := []string{"--cache-dir=" + debs}
	if r.Variant != "" {
		args = append(args, "--variant="+r.Variant)
	}
	if len(r.Include) > 0 {
		args = append(args, "--include="+strings.Join(r.Include, ","))
	}
	args = append(args, r.Suite, tmp, Mirror)
	fmt.Fprintf(log, "+ debootstrap %s\n", strings.Join(args, " "))
	if err := run(ctx, log, "debootstrap", args...); err != nil {
		// debootstrap's own log says more than its output.
		detail := tailFile(filepath.Join(tmp, "debootstrap", "debootstrap.log"), 15)
		return fmt.Errorf("debootstrap %s: %w: %s\n%s", r.Suite, err, tailFile(log.Name(), 15), detail)
	}
	return nil
}

// policyRC keeps services from starting while the setup script installs
// or configures them.
const policyRC = "#!/bin/sh\n# allium: no service starts while the tree is built\nexit 101\n"

// setupWrapper mounts what a chrooted script needs, in the private mount
// namespace unshare gave it (the mounts go with it), and runs the script.
const setupWrapper = `set -e
t=$1
mount -t proc proc "$t/proc"
mount -t sysfs sysfs "$t/sys"
mount --rbind /dev "$t/dev"
exec chroot "$t" /bin/sh -e /allium-setup.sh
`

// setup runs r.Setup chrooted in tmp.
func setup(ctx context.Context, r Recipe, tmp string, log *os.File) error {
	if r.Setup == "" {
		return nil
	}
	policy := filepath.Join(tmp, "usr/sbin/policy-rc.d")
	script := filepath.Join(tmp, "allium-setup.sh")
	if err := os.WriteFile(policy, []byte(policyRC), 0o755); err != nil {
		return fmt.Errorf("debian: %w", err)
	}
	if err := os.WriteFile(script, []byte(r.Setup), 0o755); err != nil {
		return fmt.Errorf("debian: %w", err)
	}
	fmt.Fprintf(log, "+ setup script, chrooted:\n%s\n", r.Setup)
	err := run(ctx, log, "unshare", "--mount", "--propagation", "private", "--",
		"/bin/sh", "-c", setupWrapper, "sh", tmp)
	if err != nil {
		return fmt.Errorf("debian %s: setup script: %w: %s", r.Suite, err, tailFile(log.Name(), 15))
	}
	for _, p := range []string{policy, script} {
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("debian: %w", err)
		}
	}
	return nil
}

// run runs name with its output appended to log and a clean environment.
func run(ctx context.Context, log *os.File, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"DEBIAN_FRONTEND=noninteractive", "LC_ALL=C", "HOME=/root",
	}
	return cmd.Run()
}

// tailFile is the last n lines of path, or why it cannot be read.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Copy copies the tree src to dst, which must not exist or be an empty
// directory, keeping owners, modes, times, hard links, device nodes and
// (where dst's filesystem takes them) extended attributes; it shares
// blocks with src where the filesystem can (cp --reflink=auto). It needs
// root for a tree of several owners.
func Copy(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	out, err := exec.Command("cp", "-a", "--reflink=auto", src+"/.", dst+"/").CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp -a %s %s: %w: %s", src, dst, err, strings.TrimSpace(string(out)))
	}
	return nil
}
