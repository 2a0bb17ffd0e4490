// Command kexec is the install bundle's static kexec helper: install.sh
// runs it on the machine it takes over, which may have no kexec-tools.
//
//	kexec load --kernel FILE --initrd FILE --cmdline STRING [--syscall auto|file|load]
//	kexec exec
//	kexec unload
//
// load tries kexec_file_load first (the kernel parses the bzImage and,
// under lockdown or Secure Boot, checks its signature), then kexec_load
// (the image is laid out here, with u-root's purgatory), and names the
// reason for each refusal when both fail. exec syncs the filesystems and
// jumps into the loaded kernel, as `kexec -e` does: it stops nothing, so
// install.sh runs it after the services are stopped (systemctl kexec)
// or where there is no service manager to ask.
//
// Its one dependency beyond x/sys is u-root's bzImage loader for
// kexec_load: laying out the boot parameters, the memory map and the
// purgatory is the part of kexec-tools not worth writing again.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	ulinux "github.com/u-root/u-root/pkg/boot/linux"
	"golang.org/x/sys/unix"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	var err error
	switch args[0] {
	case "load":
		err = load(args[1:], stdout)
	case "exec":
		err = execLoaded()
	case "unload":
		err = unload()
	case "-h", "--help", "help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "kexec: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	if errors.Is(err, errUsage) {
		fmt.Fprintln(stderr, "kexec:", err)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "kexec:", err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  kexec load --kernel FILE --initrd FILE --cmdline STRING [--syscall auto|file|load]
  kexec exec     sync, then boot the loaded kernel now (stops nothing)
  kexec unload   forget the loaded kernel
`)
}

var errUsage = errors.New("usage")

func load(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	kernel := fs.String("kernel", "", "the kernel (bzImage)")
	initrd := fs.String("initrd", "", "the initramfs")
	cmdline := fs.String("cmdline", "", "the kernel command line")
	syscall := fs.String("syscall", "auto", "auto (kexec_file_load, then kexec_load), file or load")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: load: %v", errUsage, err)
	}
	if *kernel == "" || fs.NArg() > 0 {
		return fmt.Errorf("%w: load needs --kernel (and takes no other arguments)", errUsage)
	}
	k, err := os.Open(*kernel)
	if err != nil {
		return err
	}
	defer k.Close()
	var rd *os.File
	if *initrd != "" {
		if rd, err = os.Open(*initrd); err != nil {
			return err
		}
		defer rd.Close()
	}
	how, err := loadWith(*syscall, k, rd, *cmdline)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "loaded %s with %s\n", *kernel, how)
	return nil
}

// loadWith loads the kernel with the syscall asked for, and says which
// one did it, or why each refused.
func loadWith(which string, k, rd *os.File, cmdline string) (string, error) {
	var why []string
	if which == "auto" || which == "file" {
		err := fileLoad(k, rd, cmdline)
		if err == nil {
			return "kexec_file_load", nil
		}
		why = append(why, "kexec_file_load: "+explain(err, true))
		if which == "file" {
			return "", errors.New(why[0])
		}
	}
	if which == "auto" || which == "load" {
		if _, err := k.Seek(0, io.SeekStart); err != nil {
			return "", err
		}
		if rd != nil {
			if _, err := rd.Seek(0, io.SeekStart); err != nil {
				return "", err
			}
		}
		err := ulinux.KexecLoad(k, rd, cmdline, nil, nil)
		if err == nil {
			return "kexec_load", nil
		}
		why = append(why, "kexec_load: "+explain(err, false))
		return "", fmt.Errorf("this kernel refuses to load another: %s", strings.Join(why, "; "))
	}
	return "", fmt.Errorf("%w: --syscall %q: want auto, file or load", errUsage, which)
}

func fileLoad(k, rd *os.File, cmdline string) error {
	flags, rfd := 0, -1
	if rd != nil {
		rfd = int(rd.Fd())
	} else {
		flags |= unix.KEXEC_FILE_NO_INITRAMFS
	}
	// The kernel wants the command line's terminating NUL counted;
	// x/sys adds it.
	return unix.KexecFileLoad(int(k.Fd()), rfd, cmdline, flags)
}

// explain turns a refusal into its likely reason.
func explain(err error, file bool) string {
	switch {
	case errors.Is(err, unix.ENOSYS):
		return "not in this kernel (ENOSYS)"
	case errors.Is(err, unix.EPERM):
		if disabled() {
			return "kexec is disabled (kernel.kexec_load_disabled=1)"
		}
		if l := lockdown(); l != "" {
			return "refused by kernel lockdown (" + l + ")"
		}
		return "not permitted (EPERM: no CAP_SYS_BOOT, or a security module)"
	case errors.Is(err, unix.EKEYREJECTED), errors.Is(err, unix.EBADMSG), errors.Is(err, unix.ENOKEY):
		return "the kernel demands a signed kernel (Secure Boot or lockdown) and this one's signature is not trusted"
	case errors.Is(err, unix.ENOEXEC) && file:
		return "the kernel does not take this image (not a bzImage it can load)"
	case errors.Is(err, unix.EBUSY):
		return "a crash kernel or another kexec is in the way (EBUSY)"
	case errors.Is(err, unix.ENOMEM):
		return "not enough memory for the image (ENOMEM)"
	}
	return err.Error()
}

func disabled() bool {
	b, err := os.ReadFile("/proc/sys/kernel/kexec_load_disabled")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// lockdown is the active lockdown mode, or "" when there is none.
func lockdown() string {
	b, err := os.ReadFile("/sys/kernel/security/lockdown")
	if err != nil {
		return ""
	}
	return activeLockdown(string(b))
}

// activeLockdown reads the mode in brackets of the lockdown file
// ("none [integrity] confidentiality"); "" for none.
func activeLockdown(s string) string {
	_, rest, ok := strings.Cut(s, "[")
	m, _, ok2 := strings.Cut(rest, "]")
	if !ok || !ok2 || m == "none" {
		return ""
	}
	return m
}

func loaded() bool {
	b, err := os.ReadFile("/sys/kernel/kexec_loaded")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

func execLoaded() error {
	if !loaded() {
		return errors.New("exec: no kernel is loaded (/sys/kernel/kexec_loaded is not 1): run kexec load first")
	}
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_KEXEC); err != nil {
		return fmt.Errorf("exec: reboot(KEXEC): %w", err)
	}
	return nil
}

func unload() error {
	if err := unix.KexecFileLoad(-1, -1, "", unix.KEXEC_FILE_UNLOAD); err != nil && !errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("unload: %w", err)
	}
	// kexec_load with no segments unloads what it loaded.
	if _, _, e := unix.Syscall6(unix.SYS_KEXEC_LOAD, 0, 0, 0, 0, 0, 0); e != 0 && e != unix.ENOSYS && e != unix.EINVAL {
		return fmt.Errorf("unload: kexec_load: %w", e)
	}
	return nil
}
