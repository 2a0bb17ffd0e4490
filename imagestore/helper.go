//go:build unix

package imagestore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"

	"allium/internal/child"
	"allium/internal/safe"

	"allium/manifest"

	"golang.org/x/sys/unix"
)

// The unpack helper protocol. PID 1 never unpacks an upload itself: it
// re-executes its own binary as `init unpack`, so that a bug or a bomb
// in a decompressor kills the helper, not PID 1 (and the kernel with
// it).
//
//	PID 1: Helper.Unpack                             init unpack: HelperMain
//	────────────────────                             ───────────────────────
//	open ARCHIVE ─────────────── fd 0 ─────────────> the archive (nothing else is opened
//	pipe() ──────────────────── fd 1 <────────────── but the staging directory)
//	exec EXE unpack -max-bytes N -max-entries N
//	     -max-ratio N [-allow-devices] [-allow-setuid] STAGING
//	(reaper registers the pid)                       as root: chroot STAGING, chdir /,
//	                                                 RLIMIT_FSIZE = max-bytes, RLIMIT_NOFILE,
//	                                                 no_new_privs, capabilities cut to
//	                                                 CHOWN DAC_OVERRIDE FOWNER FSETID MKNOD
//	                                                 Unpack(fd 0 → STAGING/rootfs, manifest.json)
//	read fd 1 to EOF <──── {"manifest":{...}}\n ──── exit 0
//	                 <──── {"error":"...","invalid":true}\n ── exit 1 (2: bad arguments)
//	reaper: wait status ─> ParseHelperResult(stdout, status) ─> *manifest.Manifest or error
//	ctx done: SIGKILL the helper; either way the caller removes STAGING on error
//
// stderr is the node's console, for a panic's trace. The result is one
// JSON line of at most maxResult bytes.

// Helper unpacks in a child process running HelperMain.
type Helper struct {
	// Exe is the binary that runs HelperMain for the arguments
	// "unpack ..."; "" means /proc/self/exe.
	Exe string
	// Starter starts the helper and delivers its wait status: PID 1's
	// reaper, the one caller of wait4 (tests: testkit.Starter).
	// Required: without it Unpack fails with child.ErrNoStarter.
	Starter child.Starter
	// Log receives a panic of the goroutine that reads the helper's
	// result; nil means slog.Default().
	Log *slog.Logger
}

const maxResult = 4 << 20

func (h Helper) Unpack(ctx context.Context, archivePath, stagingDir string, lim Limits) (*manifest.Manifest, error) {
	exe := h.Exe
	if exe == "" {
		exe = "/proc/self/exe"
	}
	cmd, stdout, err := HelperCommand(exe, lim, archivePath, stagingDir)
	if err != nil {
		return nil, err
	}
	defer stdout.Close()
	status, err := child.Start(h.Starter, cmd)
	closeChildFiles(cmd) // the child has its copies; the parent's would keep the pipe open
	if err != nil {
		return nil, fmt.Errorf("imagestore: start the unpack helper: %w", err)
	}
	out := make(chan []byte, 2) // the result, then the deferred nil
	safe.Go(h.Log, "imagestore: unpack helper result", func() {
		defer func() { out <- nil }() // a panic leaves a nil result, not a hang
		b, _ := io.ReadAll(io.LimitReader(stdout, maxResult))
		io.Copy(io.Discard, stdout) // never leave the helper blocked on a full pipe
		out <- b
	})
	select {
	case ws := <-status:
		return ParseHelperResult(<-out, ws)
	case <-ctx.Done():
		// Its status has not come, so the pid is still the helper's (but
		// for the moment between the reaper's wait4 and its send).
		unix.Kill(cmd.Process.Pid, unix.SIGKILL)
		<-status
		return nil, fmt.Errorf("imagestore: unpack: %w", ctx.Err())
	}
}

func closeChildFiles(cmd *exec.Cmd) {
	for _, f := range []any{cmd.Stdin, cmd.Stdout} {
		if f, ok := f.(*os.File); ok {
			f.Close()
		}
	}
}

// HelperCommand builds the helper's command: exe with the arguments
// "unpack", the limits and stagingDir; the archive opened as its stdin,
// and a pipe as its stdout, whose read end is returned. Both standard
// streams are *os.File, so that os/exec starts no copying goroutines
// (which only Wait, never called in PID 1, would collect). After
// starting cmd the caller closes its copies of cmd.Stdin and cmd.Stdout,
// reads the returned file to EOF and passes it with the wait status to
// ParseHelperResult. The environment is empty; the child gets SIGKILL
// if the thread that started it dies.
func HelperCommand(exe string, lim Limits, archivePath, stagingDir string) (*exec.Cmd, *os.File, error) {
	archive, err := os.Open(archivePath)
	if err != nil {
		return nil, nil, fmt.Errorf("imagestore: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		archive.Close()
		return nil, nil, fmt.Errorf("imagestore: %w", err)
	}
	cmd := &exec.Cmd{
		Path: exe, Args: append([]string{"init", "unpack"}, helperArgs(lim, stagingDir)...),
		Env: []string{}, Dir: "/", Stdin: archive, Stdout: w, Stderr: os.Stderr,
		SysProcAttr: helperSysProcAttr(),
	}
	return cmd, r, nil
}

func helperArgs(lim Limits, stagingDir string) []string {
	args := []string{
		fmt.Sprint("-max-bytes=", lim.MaxBytes),
		fmt.Sprint("-max-entries=", lim.MaxEntries),
		fmt.Sprint("-max-ratio=", lim.MaxRatio),
	}
	if lim.AllowDevices {
		args = append(args, "-allow-devices")
	}
	if lim.AllowSetuid {
		args = append(args, "-allow-setuid")
	}
	return append(args, "--", stagingDir)
}

// helperResult is the helper's one line on stdout.
type helperResult struct {
	Manifest *manifest.Manifest `json:"manifest,omitempty"`
	Error    string             `json:"error,omitempty"`
	Invalid  bool               `json:"invalid,omitempty"`
}

// HelperMain is `init unpack`: args are the arguments after "unpack".
// It unpacks stdin into the staging directory (see the protocol above)
// and returns the exit code: 0 unpacked, 1 refused or failed, 2 usage.
// When root and -confine (the default), it first confines itself for
// good: call it only in a process of its own. -confine=false is for
// tests that call HelperMain in-process.
func HelperMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("unpack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lim Limits
	fs.Int64Var(&lim.MaxBytes, "max-bytes", 0, "total bytes of files")
	fs.IntVar(&lim.MaxEntries, "max-entries", 0, "tar entries")
	fs.IntVar(&lim.MaxRatio, "max-ratio", 0, "uncompressed over compressed bytes")
	fs.BoolVar(&lim.AllowDevices, "allow-devices", false, "allow device nodes when the manifest asks")
	fs.BoolVar(&lim.AllowSetuid, "allow-setuid", false, "allow setuid and setgid files when the manifest asks")
	confine := fs.Bool("confine", true, "as root: chroot, no_new_privs, fewer capabilities, rlimits")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: init unpack [flags] STAGING_DIR < ARCHIVE")
		return 2
	}
	dst := fs.Arg(0)
	var err error
	var m *manifest.Manifest
	if *confine && os.Geteuid() == 0 {
		runtime.LockOSThread() // see confineHelper; never unlocked: the process ends
		dst, err = confineHelper(dst, lim)
	}
	if err == nil {
		m, _, err = Unpack(context.Background(), stdin, dst, lim)
	}
	res := helperResult{Manifest: m}
	if err != nil {
		res = helperResult{Error: err.Error(), Invalid: errors.Is(err, ErrInvalid)}
	}
	if werr := json.NewEncoder(stdout).Encode(res); werr != nil || err != nil {
		return 1
	}
	return 0
}

// ParseHelperResult reads the helper's stdout and wait status. The
// manifest is validated again: the parent trusts the helper no more
// than the archive.
func ParseHelperResult(stdout []byte, ws unix.WaitStatus) (*manifest.Manifest, error) {
	if ws.Signaled() {
		return nil, fmt.Errorf("imagestore: the unpack helper was killed by %s", unix.SignalName(ws.Signal()))
	}
	var res struct {
		Manifest json.RawMessage `json:"manifest"`
		Error    string          `json:"error"`
		Invalid  bool            `json:"invalid"`
	}
	if err := json.Unmarshal(stdout, &res); err != nil {
		return nil, fmt.Errorf("imagestore: the unpack helper exited with status %d and no result (%.200q)", ws.ExitStatus(), stdout)
	}
	switch {
	case res.Error != "" && res.Invalid:
		return nil, invalid(errors.New(res.Error))
	case res.Error != "":
		return nil, errors.New(res.Error)
	case ws.ExitStatus() != 0 || len(res.Manifest) == 0:
		return nil, fmt.Errorf("imagestore: the unpack helper exited with status %d and no manifest", ws.ExitStatus())
	}
	m, err := manifest.Parse(bytes.NewReader(res.Manifest))
	if err != nil {
		return nil, fmt.Errorf("imagestore: the unpack helper's result: %w", err)
	}
	return m, nil
}
