package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"allium/api"
)

// containerCmd makes a command that takes HOST and NAME|FILE.
func (g *globals) containerCmd(use, short, long, example string, body func(ctx context.Context, s *session, name string) error) *cobra.Command {
	nodeKey := new(string)
	cmd := &cobra.Command{
		Use:               use + " HOST NAME|FILE",
		Short:             short,
		Long:              long + "\n\n" + nameOrFile,
		Example:           example,
		Args:              hostAnd("NAME (or the FILE it was started from)"),
		ValidArgsFunction: g.completeHost,
		RunE: g.runLongE(func(ctx context.Context, args []string) error {
			name, err := containerArg(args[1])
			if err != nil {
				return err
			}
			s, err := g.connect(args[0], *nodeKey)
			if err != nil {
				return err
			}
			return body(ctx, s, name)
		}),
	}
	nodeKeyFlag(cmd, nodeKey)
	return cmd
}

const nameOrFile = `The container is named by NAME, or by the FILE it was started from:
cloud stop web1 bar/foo.txz and cloud stop web1 foo name the same one.`

func newStop(g *globals) *cobra.Command {
	var w waitFlags
	cmd := g.containerCmd("stop", "Stop a container",
		`Stop a container: the node sends the manifest's stop signal, waits its
timeout, then kills the whole process group. A stopped container stays
stopped, across reboots too, until cloud start or cloud restart.`,
		`  cloud stop web1 foo
  cloud stop 1.2.3.4:7707 foo.txz --node-key ed25519:BASE64
  cloud stop web1 foo --no-wait`,
		func(ctx context.Context, s *session, name string) error { return g.stop(ctx, s, name, w) })
	w.add(cmd, "until the container has stopped")
	return cmd
}

func (g *globals) stop(ctx context.Context, s *session, name string, w waitFlags) error {
	if err := w.check(); err != nil {
		return err
	}
	c, err := s.act(ctx, name, s.client.StopContainer)
	if err != nil {
		return err
	}
	if c.State == api.StateStopping && !w.no {
		if err := g.waitDown(ctx, s, name, w.limit); err != nil {
			return err
		}
	}
	fmt.Fprintf(g.stdout, "stopped %s\n", name)
	return nil
}

func newRestart(g *globals) *cobra.Command {
	var w waitFlags
	cmd := g.containerCmd("restart", "Restart a container",
		`Restart a container (stop, then start) and wait until it runs again. An
operator's restart never counts as a failure, and it clears crashloop.`,
		`  cloud restart web1 foo
  cloud restart web1 foo --no-wait`,
		func(ctx context.Context, s *session, name string) error {
			if err := w.check(); err != nil {
				return err
			}
			// The node answers the restart before its supervisor has
			// acted on it: what a GET then shows may be the run before.
			before, err := s.get(ctx, name)
			if err != nil {
				return err
			}
			if _, err := s.act(ctx, name, s.client.RestartContainer); err != nil || w.no {
				return err
			}
			return g.waitUp(ctx, s, name, "", w.limit, &before)
		})
	w.add(cmd, "until the container runs")
	return cmd
}

func newKill(g *globals) *cobra.Command {
	var signal string
	cmd := g.containerCmd("kill", "Send a signal to a container's processes",
		`Send a signal (default SIGKILL) to the process group of a container's
workload. This is not a stop: if the workload dies of it, the node's
restart policy brings it back, counting a failure, as it would after a
crash. Use cloud stop to stop it for good.`,
		`  cloud kill web1 foo
  cloud kill web1 foo --signal HUP`,
		func(ctx context.Context, s *session, name string) error {
			c, err := s.act(ctx, name, func(ctx context.Context, name string) (api.Container, error) {
				return s.client.SignalContainer(ctx, name, signal)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "sent %s to %s (%s)\n", orDefault(signal, "SIGKILL"), name, describe(c))
			return nil
		})
	cmd.Flags().StringVarP(&signal, "signal", "s", "", "the signal, by name: KILL, TERM, HUP, INT, QUIT, USR1, USR2... (default KILL)")
	return cmd
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func newRm(g *globals) *cobra.Command {
	cmd := g.containerCmd("rm", "Stop and remove a container",
		`Stop and remove a container. Its volumes stay on the node, so a later
cloud start under the same name finds them; its image stays too (cloud rmi
removes it).`,
		`  cloud rm web1 foo`,
		func(ctx context.Context, s *session, name string) error {
			ctx, cancel := s.bounded(ctx)
			defer cancel()
			if err := s.client.RemoveContainer(ctx, name); err != nil {
				return s.explain(err)
			}
			fmt.Fprintf(g.stdout, "removed %s (its volumes are kept)\n", name)
			return nil
		})
	return cmd
}

// act does one thing to a container within --timeout.
func (s *session) act(ctx context.Context, name string, do func(context.Context, string) (api.Container, error)) (api.Container, error) {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	c, err := do(ctx, name)
	if err != nil {
		return c, s.explain(err)
	}
	return c, nil
}

func newPs(g *globals) *cobra.Command {
	var nodeKey string
	var wide bool
	cmd := &cobra.Command{
		Use:   "ps HOST",
		Short: "List a node's containers",
		Long: `List a node's containers: name, state, pid, how long it has run, how
many times it was restarted after a failure, how its last run ended, its
isolation rung and its image (name@digest). Uptimes use this machine's
clock.

With --wide (-w), each line also has the host uids its uids 0-65535 are
at the userns rung (UIDS, the first and last: its root is no one on the
node), its address on its private network (ADDRESS) and what it uses
now, as cloud stats shows it:
CPU time, memory now and at most, processes, block I/O read and written,
and OOM kills. A container without an address, or without a cgroup (a
node without cgroups, a container that has not run), shows "-" there.
That is one more request per container, made together; --timeout bounds
them all. With --json, --wide adds each container's stats under "stats".`,
		Example: `  cloud ps web1
  cloud ps -w web1
  cloud ps web1 --json`,
		Args:              hostArg,
		ValidArgsFunction: g.completeHost,
		RunE: g.runE(func(ctx context.Context, args []string) error {
			return g.ps(ctx, args[0], nodeKey, wide)
		}),
	}
	nodeKeyFlag(cmd, &nodeKey)
	cmd.Flags().BoolVarP(&wide, "wide", "w", false, "add each container's address and what it uses now (CPU, memory, pids, I/O)")
	return cmd
}

func (g *globals) ps(ctx context.Context, host, nodeKey string, wide bool) error {
	s, err := g.connect(host, nodeKey)
	if err != nil {
		return err
	}
	if g.json && !wide {
		return g.printCall(ctx, s, "/v1/containers")
	}
	cs, err := s.client.Containers(ctx)
	if err != nil {
		return s.explain(err)
	}
	var stats []api.ContainerStats
	if wide {
		if stats, err = s.statsOf(ctx, cs); err != nil {
			return err
		}
	}
	if g.json {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(psWideRows(cs, stats))
	}
	if len(cs) == 0 {
		fmt.Fprintf(g.stderr, "no containers on %s; cloud start %s FILE runs one\n", s.name, s.name)
		return nil
	}
	return g.psTable(cs, stats)
}

// psTable prints one line per container, and then the containers'
// errors; stats (from statsOf) make it the wide table.
func (g *globals) psTable(cs []api.Container, stats []api.ContainerStats) error {
	tw := tabwriter.NewWriter(g.stdout, 0, 8, 2, ' ', 0)
	wide := stats != nil
	header := "NAME\tSTATE\tPID\tUPTIME\tRESTARTS\tLAST EXIT\tISOLATION\t"
	if wide {
		header += "UIDS\tADDRESS\t" + statsHeader + "\t"
	}
	fmt.Fprintln(tw, header+"IMAGE")
	for i, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t", c.Name, psState(c), dash(c.PID),
			psUptime(c), c.Restarts, lastExit(c.LastExit), dashText(c.Isolation))
		if wide {
			fmt.Fprintf(tw, "%s\t%s\t%s\t", dashText(c.IDs), dashText(c.Address), statsCells(stats[i]))
		}
		fmt.Fprintf(tw, "%s@%s\n", c.ImageName, shortDigest(c.Image))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range cs {
		if c.Error != "" {
			fmt.Fprintf(g.stdout, "%s: %s\n", c.Name, c.Error)
		}
		if c.Held != "" {
			fmt.Fprintf(g.stdout, "%s: %s\n", c.Name, c.Held)
		}
	}
	return nil
}

// printCall GETs path and prints the node's JSON.
func (g *globals) printCall(ctx context.Context, s *session, path string) error {
	raw, err := s.call(ctx, http.MethodGet, path)
	if err != nil {
		return err
	}
	return g.printJSON(raw)
}

func psState(c api.Container) string {
	if c.Held != "" {
		return "held" // boot-loop protection: the reason follows the table
	}
	if c.State == api.StateBackoff && !c.NextRestart.IsZero() {
		return fmt.Sprintf("backoff (restart in %v)", until(c.NextRestart))
	}
	return c.State
}

func psUptime(c api.Container) string {
	if c.Started.IsZero() || (c.State != api.StateRunning && c.State != api.StateStarting) {
		return "-"
	}
	return uptime(max(0, time.Since(c.Started).Seconds()))
}

func lastExit(e *api.Exit) string {
	if e == nil {
		return "-"
	}
	what := "code " + strconv.Itoa(e.Code)
	switch {
	case e.OOM:
		what = "oom" // the memory limit: the kernel's OOM killer
	case e.Signal != "":
		what = e.Signal
	}
	if e.Time.IsZero() {
		return what
	}
	return what + ", " + ago(e.Time) + " ago"
}

// ago renders how long ago t was, in its largest unit: 5s, 3m, 2h, 4d.
func ago(t time.Time) string {
	d := max(0, time.Since(t))
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func dash(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

// shortDigest is "sha256:" and the first 12 hex digits.
func shortDigest(d string) string {
	const n = len("sha256:") + 12
	if len(d) > n {
		return d[:n]
	}
	return d
}

// dashText is s, or "-" when it is empty.
func dashText(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
