package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"allium/api"
)

func newStats(g *globals) *cobra.Command {
	var nodeKey string
	var follow bool
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "stats HOST [NAME...]",
		Short: "Show what a node's containers use now",
		Long: `Show what each container uses now, from its cgroup: CPU time, memory
(now and at most), processes, block I/O and the OOM kills of its memory
limit. A node without cgroups has nothing to show ("-"). With -f the
table is printed again every --every, until interrupted.`,
		Example: `  cloud stats web1
  cloud stats web1 app db
  cloud stats -f web1
  cloud stats web1 --json`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: g.completeHost,
		RunE: g.runLongE(func(ctx context.Context, args []string) error {
			if !follow {
				return g.statsOnce(ctx, args[0], nodeKey, args[1:])
			}
			return g.statsFollow(ctx, args[0], nodeKey, args[1:], every)
		}),
	}
	nodeKeyFlag(cmd, &nodeKey)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "print the table again and again")
	cmd.Flags().DurationVar(&every, "every", 2*time.Second, "with -f, how often")
	return cmd
}

// statsOnce is one table, bounded by --timeout.
func (g *globals) statsOnce(ctx context.Context, host, nodeKey string, names []string) error {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	return g.stats(ctx, host, nodeKey, names)
}

// statsFollow prints a table every interval until ctx ends (^C), each
// bounded by --timeout; a blank line and the time part them.
func (g *globals) statsFollow(ctx context.Context, host, nodeKey string, names []string, every time.Duration) error {
	if every <= 0 {
		return usagef("--every %v: want a positive duration such as 2s", every)
	}
	for {
		fmt.Fprintf(g.stdout, "%s\n", time.Now().Format("15:04:05"))
		if err := g.statsOnce(ctx, host, nodeKey, names); err != nil {
			if ctx.Err() != nil {
				return nil // interrupted
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
			fmt.Fprintln(g.stdout)
		}
	}
}

func (g *globals) stats(ctx context.Context, host, nodeKey string, names []string) error {
	s, err := g.connect(host, nodeKey)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		cs, err := s.client.Containers(ctx)
		if err != nil {
			return s.explain(err)
		}
		for _, c := range cs {
			names = append(names, c.Name)
		}
	}
	var all []api.ContainerStats
	for _, n := range names {
		st, err := s.client.ContainerStats(ctx, n)
		if err != nil {
			return s.explain(err)
		}
		all = append(all, st)
	}
	if g.json {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(all)
	}
	if len(all) == 0 {
		fmt.Fprintf(g.stderr, "no containers on %s\n", s.name)
		return nil
	}
	return statsTable(g.stdout, all)
}

// statsTable prints one line per container.
func statsTable(w io.Writer, all []api.ContainerStats) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\t"+statsHeader)
	for _, st := range all {
		fmt.Fprintf(tw, "%s\t%s\n", st.Name, statsCells(st))
	}
	return tw.Flush()
}

// statsHeader names the columns of statsCells, tab-separated.
const statsHeader = "CPU\tMEMORY\tPEAK\tPIDS\tREAD\tWRITTEN\tOOM KILLS"

// statsCells is one container's usage as the cells under statsHeader,
// tab-separated: "-" in each when it has no cgroup.
func statsCells(st api.ContainerStats) string {
	if !st.Cgroup {
		return "-\t-\t-\t-\t-\t-\t-"
	}
	return fmt.Sprintf("%.2fs\t%s\t%s\t%d\t%s\t%s\t%d", st.CPUSeconds, mib(st.Memory), mib(st.MemoryPeak),
		st.Pids, mib(st.IORead), mib(st.IOWrite), st.OOMKills)
}
