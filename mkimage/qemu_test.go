package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestQemuArgs(t *testing.T) {
	base := qemuSpec{Dir: "/a", Cmdline: "console=ttyS0 allium.data=LABEL=allium-data", HostPort: 17707,
		GuestPort: 7707, Serial: "stdio", Mem: 512, Accel: "tcg"}
	common := []string{"-nodefaults", "-no-user-config", "-display", "none",
		"-machine", "q35,accel=tcg", "-cpu", "max", "-smp", "1", "-m", "512",
		"-kernel", "/a/vmlinuz", "-initrd", "/a/initrd.img", "-append", "console=ttyS0 allium.data=LABEL=allium-data",
		"-serial", "stdio", "-nic", "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:17707-:7707"}
	data := []string{"-drive", "file=/a/data.img,format=raw,if=none,id=data,cache=writeback",
		"-device", "virtio-blk-pci,drive=data,serial=allium-data"}

	withData := base
	withData.Data = true
	all := withData
	all.Monitor, all.NoReboot = "/run/m,1.sock", true
	fileSerial := base
	fileSerial.Serial, fileSerial.Accel, fileSerial.HostPort = "/tmp/s.log", "kvm", 0
	forwards := base
	forwards.Forwards = [][2]int{{18080, 8080}, {2222, 22}}
	isolated := base
	isolated.Isolate = true

	tests := []struct {
		name string
		spec qemuSpec
		want []string
	}{
		{"no data", base, common},
		{"data", withData, slices.Concat(common, data)},
		{"data, monitor, no-reboot", all, slices.Concat(common, data,
			[]string{"-monitor", "unix:/run/m,,1.sock,server,nowait", "-no-reboot"})},
		{"serial file, kvm, no forward", fileSerial, slices.Concat(
			[]string{"-nodefaults", "-no-user-config", "-display", "none", "-machine", "q35,accel=kvm"},
			common[6:18], []string{"-serial", "file:/tmp/s.log", "-nic", "user,model=virtio-net-pci"})},
		{"forwards", forwards, slices.Concat(common[:len(common)-1],
			[]string{"user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:17707-:7707,hostfwd=tcp:127.0.0.1:18080-:8080,hostfwd=tcp:127.0.0.1:2222-:22"})},
		{"isolated", isolated, slices.Concat(common[:len(common)-1],
			[]string{"user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:17707-:7707"})},
	}
	for _, tt := range tests {
		if got := qemuArgs(tt.spec); !slices.Equal(got, tt.want) {
			t.Errorf("qemuArgs(%s) =\n  %q\nwant\n  %q", tt.name, got, tt.want)
		}
	}
}

func TestStripParam(t *testing.T) {
	got := stripParam("console=ttyS0  allium.data=LABEL=x panic=-1 allium.data=/dev/vdb", dataParam)
	if want := "console=ttyS0 panic=-1"; got != want {
		t.Errorf("stripParam = %q, want %q", got, want)
	}
}

func TestCommandLine(t *testing.T) {
	got := commandLine([]string{"qemu", "-append", "a b", "-x", "it's", ""})
	if want := `qemu -append 'a b' -x 'it'\''s' ''`; got != want {
		t.Errorf("commandLine = %s, want %s", got, want)
	}
}

// applianceDir fakes what `mkimage appliance` writes, enough for qemu.
func applianceDir(t *testing.T, nodeJSON string, data bool) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{kernelFile: "k", initrdFile: "i", cmdlineFile: cmdline(false, "") + "\n"}
	if nodeJSON != "" {
		files[nodeJSONFile] = nodeJSON
	}
	if data {
		files[dataFile] = ""
	}
	for name, s := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestQemuDryRun(t *testing.T) {
	dir := applianceDir(t, `{"name":"t1","port":8443}`, true)
	code, stdout, stderr := runMkimage(t, "qemu", dir, "--dry-run")
	if code != 0 {
		t.Fatalf("mkimage qemu --dry-run = exit %d: %s", code, stderr)
	}
	for _, want := range []string{"qemu-system-x86_64 ", "hostfwd=tcp:127.0.0.1:8443-:8443",
		"'console=ttyS0 panic=-1 loglevel=4 allium.data=LABEL=allium-data'", "file=" + dir + "/data.img"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("mkimage qemu --dry-run = %s, want it to contain %s", stdout, want)
		}
	}
	code, stdout, _ = runMkimage(t, "qemu", dir, "--dry-run", "--no-data", "--port", "17707")
	if code != 0 || strings.Contains(stdout, "allium.data") || strings.Contains(stdout, "-drive") ||
		!strings.Contains(stdout, "hostfwd=tcp:127.0.0.1:17707-:8443") {
		t.Errorf("mkimage qemu --no-data --port 17707 = exit %d, %s; want no allium.data, no -drive, 17707 -> 8443", code, stdout)
	}
}

// A node built with --no-tcp has no API port: nothing is forwarded for
// it, and the operator is told why.
func TestQemuNoTCP(t *testing.T) {
	dir := applianceDir(t, `{"name":"t1","port":-1}`, false)
	code, stdout, stderr := runMkimage(t, "qemu", dir, "--dry-run", "--no-data")
	if code != 0 || strings.Contains(stdout, "hostfwd") || !strings.Contains(stderr, "--no-tcp") {
		t.Errorf("mkimage qemu (--no-tcp node) = exit %d, stdout %s, stderr %q; want no hostfwd and a note naming --no-tcp", code, stdout, stderr)
	}
	code, _, stderr = runMkimage(t, "qemu", dir, "--dry-run", "--no-data", "--port", "17707")
	if code != 2 || !strings.Contains(stderr, "--no-tcp") {
		t.Errorf("mkimage qemu --port 17707 (--no-tcp node) = exit %d, %q; want a usage error naming --no-tcp", code, stderr)
	}
}

func TestQemuErrors(t *testing.T) {
	noData := applianceDir(t, `{"name":"t1"}`, false)
	tests := []struct {
		args     []string
		code     int
		mentions string
	}{
		{[]string{"qemu"}, 2, "DIR"},
		{[]string{"qemu", noData, "--dry-run"}, 1, "--no-data"},
		{[]string{"qemu", t.TempDir(), "--dry-run"}, 1, "mkimage appliance"},
		{[]string{"qemu", noData, "--accel", "hvf"}, 2, "--accel"},
		{[]string{"qemu", noData, "--mem", "16"}, 2, "--mem"},
	}
	for _, tt := range tests {
		code, _, stderr := runMkimage(t, tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.mentions) {
			t.Errorf("mkimage %s = exit %d, stderr %q; want exit %d mentioning %q",
				strings.Join(tt.args, " "), code, stderr, tt.code, tt.mentions)
		}
	}
}

func TestQemuExec(t *testing.T) {
	if _, err := exec.LookPath(qemuBinary); err != nil {
		t.Skipf("%s not installed (apt-get install qemu-system-x86)", qemuBinary)
	}
	var gotArgv []string
	execve = func(path string, argv, env []string) error { gotArgv = argv; return nil }
	defer func() { execve = syscall.Exec }()
	dir := applianceDir(t, `{"name":"t1"}`, true)
	code, _, stderr := runMkimage(t, "qemu", dir)
	if code != 0 || len(gotArgv) == 0 || gotArgv[0] != qemuBinary || !strings.Contains(stderr, "+ "+commandLine(gotArgv)) {
		t.Errorf("mkimage qemu = exit %d, exec %q, stderr %q; want the logged command line exec'd", code, gotArgv, stderr)
	}
}

func TestParseForwards(t *testing.T) {
	got, err := parseForwards([]string{"8080:80", "2222:22"})
	if err != nil || !slices.Equal(got, [][2]int{{8080, 80}, {2222, 22}}) {
		t.Errorf("parseForwards(8080:80, 2222:22) = %v, %v", got, err)
	}
	for _, bad := range []string{"8080", "a:80", "0:80", "80:70000"} {
		if _, err := parseForwards([]string{bad}); err == nil {
			t.Errorf("parseForwards(%q) = nil error", bad)
		}
	}
}

// TestQemuDisk: --disk attaches disk.img, not data.img, with the same
// command line (the node finds the partition by its label), and refuses
// --no-data and a directory built with --no-disk.
func TestQemuDisk(t *testing.T) {
	dir := applianceDir(t, `{"name":"t1"}`, true)
	if code, _, stderr := runMkimage(t, "qemu", dir, "--dry-run", "--disk"); code != 1 || !strings.Contains(stderr, "--no-disk") {
		t.Errorf("mkimage qemu --disk (no disk.img) = exit %d, %q; want 1 naming --no-disk", code, stderr)
	}
	if err := os.WriteFile(filepath.Join(dir, diskFile), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runMkimage(t, "qemu", dir, "--dry-run", "--disk")
	if code != 0 || !strings.Contains(stdout, "file="+dir+"/disk.img,") || strings.Contains(stdout, "data.img") ||
		!strings.Contains(stdout, "allium.data=LABEL=allium-data") {
		t.Errorf("mkimage qemu --disk = exit %d, %s %s; want disk.img attached, no data.img, allium.data kept", code, stdout, stderr)
	}
	if code, _, stderr := runMkimage(t, "qemu", dir, "--dry-run", "--disk", "--no-data"); code != 2 || !strings.Contains(stderr, "--no-data") {
		t.Errorf("mkimage qemu --disk --no-data = exit %d, %q; want a usage error", code, stderr)
	}
}
