package qemutests

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"allium/internal/testkit"
)

// installedIn is cloud install's summary line.
var installedIn = regexp.MustCompile(`installed in ([0-9.]+) s \(copy ([0-9.]+) s, preflight ([0-9.]+) s, install ([0-9.]+) s, switch and boot ([0-9.]+) s\)`)

// BenchmarkInstall times cloud install --ssh on the Debian guest, from
// the command's start to the node answering cloud info, split into its
// phases (copy, preflight, install, switch and boot), beside the peer: a
// plain reboot of that Debian, from `reboot` over ssh to ssh answering,
// measured in the same run. The takeover should cost less than one
// reboot of the system it replaces. $ALLIUM_BENCH_ROUNDS rounds (default
// 2); a reset brings Debian back between rounds.
func BenchmarkInstall(b *testing.B) {
	e := setup(b)
	g := bootDebGuest(b)
	a := newAppliance(b, e, "kx", buildOpts{noTor: true})
	k := &takeover{g: g, a: a, home: b.TempDir(), alias: "debvm"}
	g.sshConfig(b, k.home, k.alias)
	rounds := 2
	if os.Getenv("ALLIUM_BENCH_ROUNDS") != "" {
		rounds = benchRounds(b)
	}
	ctx := context.Background()
	fmt.Printf("cloud install --ssh on a Debian 12 guest (TCG, %s MiB), beside that Debian's own reboot\n", debMem)
	fmt.Printf("%-6s %9s %9s %9s %9s %9s %9s %7s  %s\n", "round", "install", "copy", "preflight", "install", "boot", "reboot", "ratio", "load")
	var ratios []float64
	for i := range rounds {
		reboot, err := g.timeReboot(ctx)
		if err != nil {
			b.Fatalf("round %d: the peer reboot: %v", i, err)
		}
		ictx, cancel := context.WithTimeout(ctx, installWithin)
		out, err := k.cloud(ictx, "install", a.name, "--ssh", k.alias, "--ssh-config", k.sshConfig())
		cancel()
		if err != nil {
			b.Fatalf("round %d: %v\nserial:\n%s", i, err, g.serialTail())
		}
		m := installedIn.FindStringSubmatch(out)
		if m == nil {
			b.Fatalf("round %d: no summary line in cloud install's output:\n%s", i, out)
		}
		f := make([]float64, len(m))
		for j := 1; j < len(m); j++ {
			f[j], _ = strconv.ParseFloat(m[j], 64)
		}
		ratios = append(ratios, f[1]/reboot)
		fmt.Printf("%-6d %8.1fs %8.1fs %8.1fs %8.1fs %8.1fs %8.1fs %6.2fx  %s\n",
			i, f[1], f[2], f[3], f[4], f[5], reboot, f[1]/reboot, testkit.LoadAverage())
		// Debian back for the next round: the trial leaves the bootloader alone.
		if err := g.reset(); err != nil {
			b.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, sshWithin)
		_, err = g.waitBoot(wctx, "")
		cancel()
		if err != nil {
			b.Fatalf("round %d: Debian after the reset: %v", i, err)
		}
	}
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "install/reboot")
}
