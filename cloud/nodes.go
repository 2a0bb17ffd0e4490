package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"allium/api"
)

func newNodes(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "nodes",
		Short: "List the node aliases",
		Long: `List the node aliases in the configuration directory: each alias's
name, the TCP address it leads to, its onion, and the fingerprint of the key that node
must present. mkimage saves an alias for each appliance it builds.`,
		Example: `  cloud nodes
  cloud nodes --config ~/fleet-eu
  cloud nodes --json`,
		Args: cobra.NoArgs,
		RunE: g.runE(func(context.Context, []string) error { return g.nodes() }),
	}
}

func (g *globals) nodes() error {
	cfg, err := g.configDir()
	if err != nil {
		return err
	}
	aliases, err := cfg.Aliases()
	if err != nil {
		return err
	}
	if g.json {
		return g.printAliasesJSON(aliases)
	}
	if len(aliases) == 0 {
		fmt.Fprintf(g.stderr, "no aliases in %s: mkimage saves one for each appliance it builds\n",
			filepath.Join(cfg.Dir, "nodes"))
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tONION\tNODE KEY")
	for _, a := range aliases {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Name, orDash(a.Address), orDash(a.Onion), fingerprint(a.NodeKey))
	}
	return tw.Flush()
}

// fingerprint renders an alias's node key as SHA256:…, or says why not.
func fingerprint(nodeKey string) string {
	k, err := api.ParseKey(nodeKey)
	if err != nil {
		return "(bad key: " + err.Error() + ")"
	}
	return api.Fingerprint(k)
}

func (g *globals) printAliasesJSON(aliases []api.Alias) error {
	if aliases == nil {
		aliases = []api.Alias{}
	}
	b, err := json.Marshal(aliases)
	if err != nil {
		return err
	}
	return g.printJSON(b)
}
