package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"allium/api"
)

func newInfo(g *globals) *cobra.Command {
	var nodeKey string
	cmd := &cobra.Command{
		Use:   "info HOST",
		Short: "Show a node's identity and health",
		Long: `Show a node's identity and health: name, version, kernel, environment,
uptime, boot count, whether its data persists, its memory, and any
warnings it has for you. Where the node has cgroups, it also shows what
its own processes (init, tor) use in their cgroup, the memory kept for
them, and what the containers use of their cap.`,
		Example: `  cloud info web1
  cloud info web1 --json
  cloud info 203.0.113.7:7707 --node-key ed25519:BASE64`,
		Args:              hostArg,
		ValidArgsFunction: g.completeHost,
		RunE: g.runE(func(ctx context.Context, args []string) error {
			return g.info(ctx, args[0], nodeKey)
		}),
	}
	nodeKeyFlag(cmd, &nodeKey)
	return cmd
}

func (g *globals) info(ctx context.Context, host, nodeKey string) error {
	s, err := g.connect(host, nodeKey)
	if err != nil {
		return err
	}
	raw, err := s.call(ctx, http.MethodGet, "/v1/node")
	if err != nil {
		return err
	}
	if g.json {
		return g.printJSON(raw)
	}
	var n api.Node
	if err := json.Unmarshal(raw, &n); err != nil {
		return fmt.Errorf("%s: reading its answer: %w", s.target, err)
	}
	return writeRows(g.stdout, nodeRows(n))
}

// installViews say what each api.Node.Install means for the operator.
var installViews = map[string]string{
	"kexec":    "kexec trial over the old system (a reset or cloud uninstall brings it back)",
	"grub":     "GRUB's default entry, beside the old system's (cloud uninstall makes those the default again)",
	"takeover": "the OS container's init (cloud uninstall puts the original back)",
}

// nodeRows is the human view of a node, as key and value.
func nodeRows(n api.Node) [][2]string {
	rows := [][2]string{
		{"name", n.Name},
		{"version", n.Version},
		{"kernel", n.Kernel},
		{"environment", n.Environment},
	}
	if how, ok := installViews[n.Install]; ok {
		rows = append(rows, [2]string{"install", how})
	} else if n.Install != "" {
		rows = append(rows, [2]string{"install", n.Install})
	}
	rows = append(rows, [][2]string{
		{"uptime", uptime(n.UptimeSeconds)},
		{"boot count", strconv.FormatUint(n.BootCount, 10)},
		{"persistence", persistence(n)},
		{"memory", memory(n.Memory)},
	}...)
	if n.Disk != nil {
		rows = append(rows, diskRows(*n.Disk)...)
	}
	if n.Cgroup != nil {
		rows = append(rows, cgroupRows(*n.Cgroup)...)
	}
	if n.TCP != "" {
		rows = append(rows, [2]string{"tcp", n.TCP})
	}
	if n.Tor != nil {
		rows = append(rows, [2]string{"onion", n.Tor.Onion}, [2]string{"tor", torState(*n.Tor)})
	}
	if n.Isolation != nil {
		rows = append(rows, isolationRows(*n.Isolation)...)
	}
	if n.Update != nil {
		rows = append(rows, updateRows(*n.Update)...)
	}
	for _, w := range n.Warnings {
		rows = append(rows, [2]string{"warning", w})
	}
	return rows
}

// updateRows are the init staged for an update, and why the last one
// was refused.
func updateRows(u api.Update) [][2]string {
	var rows [][2]string
	if in := u.Staged; in != nil {
		rows = append(rows, [2]string{"staged init", fmt.Sprintf("%s (%s…, state schema %d); `cloud update` switches to it",
			in.Version, shortDigest(in.Digest), in.StateSchema)})
	}
	if u.Last != "" {
		rows = append(rows, [2]string{"last update", u.Last})
	}
	if u.Refused != "" {
		rows = append(rows, [2]string{"init refused", u.Refused})
	}
	return rows
}

// isolationRows are the node's rung, why each higher one is missing, and
// what its containers are not protected from:
//
//	isolation:     namespaces (cgroup v2)
//	  no userns:   user: user.max_user_namespaces=0
//	  unprotected: its root is the node's root (uid 0), only without capabilities; ...
func isolationRows(iso api.Isolation) [][2]string {
	head := iso.Highest
	if iso.Cgroup != "" {
		head += " (cgroup " + iso.Cgroup + ")"
	}
	if iso.Containers != "" && iso.Containers != iso.Highest {
		head += "; containers get " + iso.Containers + ", as far as this build goes"
	}
	if iso.Limited {
		head += "; with cgroup limits"
	}
	rows := [][2]string{{"isolation", head}}
	for _, rung := range []string{"namespaces", "userns", "cgroups"} {
		if why, ok := iso.Missing[rung]; ok {
			rows = append(rows, [2]string{"  no " + rung, why})
		}
	}
	if iso.Unprotected != "" {
		rows = append(rows, [2]string{"  unprotected", iso.Unprotected})
	}
	return rows
}

// writeRows prints "key: value" lines with the values aligned.
func writeRows(w io.Writer, rows [][2]string) error {
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0])+1)
	}
	for _, r := range rows {
		if _, err := fmt.Fprintf(w, "%-*s %s\n", width, r[0]+":", r[1]); err != nil {
			return err
		}
	}
	return nil
}

// uptime renders seconds as 1h2m3s, with days once there are any:
// 3d4h5m6s.
func uptime(seconds float64) string {
	d := time.Duration(seconds * float64(time.Second)).Round(time.Second)
	days := d / (24 * time.Hour)
	if days == 0 {
		return d.String()
	}
	s := fmt.Sprintf("%dd", days)
	if rest := d - days*24*time.Hour; rest > 0 {
		s += rest.String()
	}
	return s
}

// torState is tor's state in a line: "running, published 3m ago, RSS
// 14.2 MiB", or what keeps it from serving.
func torState(t api.Tor) string {
	s := t.State
	switch {
	case t.Published:
		s += ", published"
		if !t.PublishedAt.IsZero() {
			s += " " + time.Since(t.PublishedAt).Round(time.Second).String() + " ago"
		}
	case t.State == "running" || t.State == "publishing":
		s += fmt.Sprintf(", not published yet (bootstrap %d%%", t.Bootstrap)
		if t.BootstrapSummary != "" {
			s += ": " + t.BootstrapSummary
		}
		s += ")"
	}
	if t.RSS > 0 {
		s += ", RSS " + mib(t.RSS)
	}
	if t.Restarts > 0 {
		s += fmt.Sprintf(", %d restarts", t.Restarts)
		if t.LastExit != "" {
			s += " (last: " + t.LastExit + ")"
		}
	}
	if !t.NextStart.IsZero() && (t.State == "backoff" || t.State == "crashloop") {
		s += ", next start in " + time.Until(t.NextStart).Round(time.Second).String()
	}
	if t.ClockSkew != "" {
		s += "; CLOCK: " + t.ClockSkew
	}
	if t.LastError != "" {
		s += "; " + t.LastError
	}
	return s
}

func persistence(n api.Node) string {
	switch {
	case !n.Persistent:
		return "OFF: data is on tmpfs and will not survive a reboot"
	case n.Data == "":
		return "on"
	}
	return "on, " + n.Data
}

// diskRows are the data disk's space and inodes, and what holds it:
//
//	disk:        812 MiB free of 1946 MiB; 120310 of 131072 inodes free
//	  kept:      uploads leave 72 MiB free; state.db's reserve 16 MiB; 30 MiB uploading; 12 MiB in partial uploads
func diskRows(d api.Disk) [][2]string {
	head := fmt.Sprintf("%s free of %s", mib(uint64(d.Free)), mib(uint64(d.Total)))
	if d.Files > 0 {
		head += fmt.Sprintf("; %d of %d inodes free", d.FilesFree, d.Files)
	}
	if d.Free == 0 {
		head += "; FULL: free space (cloud rmi, cloud rm, cloud images --partial)"
	}
	kept := []string{"uploads leave " + mib(uint64(d.Floor)) + " free"}
	if d.StateReserve > 0 {
		kept = append(kept, "state.db's reserve "+mib(uint64(d.StateReserve)))
	} else {
		kept = append(kept, "no reserve for state.db")
	}
	if d.Uploading > 0 {
		kept = append(kept, mib(uint64(d.Uploading))+" uploading")
	}
	if d.Partial > 0 {
		kept = append(kept, mib(uint64(d.Partial))+" in partial uploads")
	}
	return [][2]string{{"disk", head}, {"  kept", strings.Join(kept, "; ")}}
}

func memory(m api.Memory) string {
	return fmt.Sprintf("%s total, %s available, init RSS %s", mib(m.Total), mib(m.Available), mib(m.InitRSS))
}

// cgroupRows are what the node's own cgroup uses, and the memory kept
// for it against the containers:
//
//	node cgroup: 38 MiB, peak 52 MiB, 14 tasks; 102 MiB guaranteed
//	containers:  12 MiB, capped at 922 MiB together
func cgroupRows(c api.NodeCgroup) [][2]string {
	own := mib(c.Memory)
	if c.MemoryPeak > 0 {
		own += ", peak " + mib(c.MemoryPeak)
	}
	own += fmt.Sprintf(", %d tasks; %s guaranteed", c.Pids, mib(c.Guaranteed))
	return [][2]string{
		{"node cgroup", own},
		{"containers", fmt.Sprintf("%s, capped at %s together", mib(c.ContainersMemory), mib(c.ContainersMax))},
	}
}

// mib renders bytes in MiB, with a decimal when the number is small.
func mib(bytes uint64) string {
	v := float64(bytes) / (1 << 20)
	if v < 10 {
		return strconv.FormatFloat(v, 'f', 1, 64) + " MiB"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + " MiB"
}
