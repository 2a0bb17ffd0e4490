package supervisor

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"allium/internal/testkit"
)

// 10 GB written to stdout cost init 75% of a core (issue 10).
// BenchmarkLogFlood sends 1 GiB of 100-byte lines from a child process
// through a pipe into the container log path (copyLines into a
// rotating logWriter, as a run's stdout copier does) and, in the same
// run, the same bytes into `cat > file`, and reports the CPU each
// reader spent per GiB and the ratio. The writer's own CPU counts in
// neither. The load average is printed: on a shared machine the
// absolute numbers mean little, the ratio more.
func BenchmarkLogFlood(b *testing.B) {
	const size = 1 << 30
	line := strings.Repeat("x", 99) // with its newline, 100 bytes
	producer := func() (*os.File, *exec.Cmd) {
		r, w, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command("sh", "-c", fmt.Sprintf("yes %s | head -c %d", line, size))
		cmd.Stdout = w
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		w.Close()
		return r, cmd
	}
	dir := b.TempDir()
	for b.Loop() {
		// Ours: the log path, in this process.
		r, cmd := producer()
		lw, err := openLog(filepath.Join(dir, "logs"), LogLimits{})
		if err != nil {
			b.Fatal(err)
		}
		lw.acquire(1)
		before, start := selfCPU(b), time.Now()
		copyLines(r, "stdout", lw)
		ours, oursWall := selfCPU(b)-before, time.Since(start)
		lw.release()
		cmd.Wait()

		// cat > file, reading the same bytes.
		r, cmd = producer()
		out, err := os.Create(filepath.Join(dir, "cat.out"))
		if err != nil {
			b.Fatal(err)
		}
		cat := exec.Command("cat")
		cat.Stdin, cat.Stdout = r, out
		start = time.Now()
		if err := cat.Run(); err != nil {
			b.Fatal(err)
		}
		catWall := time.Since(start)
		r.Close()
		out.Close()
		cmd.Wait()
		os.Remove(out.Name())
		catCPU := cat.ProcessState.UserTime() + cat.ProcessState.SystemTime()

		gib := float64(size) / (1 << 30)
		b.ReportMetric(ours.Seconds()/gib, "logs-cpu-s/GiB")
		b.ReportMetric(catCPU.Seconds()/gib, "cat-cpu-s/GiB")
		b.ReportMetric(ours.Seconds()/catCPU.Seconds(), "logs/cat")
		b.ReportMetric(ours.Seconds()/oursWall.Seconds(), "logs-core-share")
		b.Logf("1 GiB of 100-byte lines: logs %v CPU in %v, cat %v CPU in %v; ratio %.2f; load average %s",
			ours.Round(time.Millisecond), oursWall.Round(time.Millisecond), catCPU.Round(time.Millisecond),
			catWall.Round(time.Millisecond), ours.Seconds()/catCPU.Seconds(), testkit.LoadAverage())
	}
}

// selfCPU is the user and system time of this process so far.
func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
