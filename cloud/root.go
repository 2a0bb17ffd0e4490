package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"time"

	"github.com/spf13/cobra"

	"allium/api"
	"allium/internal/cli"
)

// globals are the flags every command takes, and where output goes.
type globals struct {
	config  string        // --config; empty: $ALLIUM_CONFIG, then the user's config dir
	json    bool          // --json: print the node's JSON answer instead of the human view
	timeout time.Duration // --timeout for the whole command
	// bootLimit bounds the start of cloud's own tor: 0 for the default,
	// or --timeout when it is given.
	bootLimit time.Duration

	via        string // --via: auto, tcp or onion
	torSocks   string // --tor-socks: a running tor's SOCKS port, or ""
	torControl string // --tor-control: its control port, or ""
	torrc      string // --torrc: extra lines for cloud's own tor, or ""
	link       *onionLink
	closers    []func() // run when the command ends: stop tor

	stdout io.Writer
	stderr io.Writer
}

const rootLong = `cloud drives Allium nodes: container appliances on cheap VPSes.

HOST is an alias name, ADDRESS:PORT, or ID.onion[:PORT] (see Onions).
  An alias (saved by mkimage when it builds an appliance) names the node's
  address and the key it must present; "cloud nodes" lists them.
  With ADDRESS:PORT, give the node's key with --node-key ed25519:BASE64.
  With an alias and --node-key, the flag wins over the key the alias pins.

The configuration directory holds the client key (client.key) and the
aliases (nodes/NAME.json). It is --config DIR if given, else $ALLIUM_CONFIG,
else allium in the user's configuration directory (~/.config/allium).

` + torHelp + `

Exit status: 0 ok, 1 the command failed, 2 the command line is wrong.`

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "cloud",
		Short:         "Drive Allium nodes",
		Long:          rootLong,
		SilenceErrors: true, // run prints them, with the exit code's hint
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return usagef("missing command: start, stop, ps, logs, images, info... (see cloud --help)")
		},
	}
	f := root.PersistentFlags()
	f.StringVar(&g.config, "config", "", "configuration `DIR` (default $ALLIUM_CONFIG, else ~/.config/allium)")
	f.BoolVar(&g.json, "json", false, "print the JSON the node answered, indented, instead of the human view")
	f.DurationVar(&g.timeout, "timeout", 30*time.Second, "give up on the node after this long")
	g.torFlags(root)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return cli.Usage(err) })
	root.AddCommand(newStart(g), newStop(g), newRestart(g), newKill(g), newRm(g), newPs(g), newStats(g), newLogs(g),
		newImages(g), newRmi(g), newEvents(g),
		newInfo(g), newReboot(g), newPoweroff(g), newNodes(g), newKeys(g), newTCP(g),
		newInstall(g), newUninstall(g), newUpdate(g))
	return root
}

// runE adapts a command's body: it checks the global flags, bounds the
// command by --timeout, and marks what the body returns as a failure
// unless it is a usage error.
func (g *globals) runE(body func(ctx context.Context, args []string) error) func(*cobra.Command, []string) error {
	return g.adapt(body, true)
}

// runLongE is runE for a command that may rightly outlast --timeout (an
// upload, a wait, a followed stream): --timeout bounds each request to
// the node instead of the whole command.
func (g *globals) runLongE(body func(ctx context.Context, args []string) error) func(*cobra.Command, []string) error {
	return g.adapt(body, false)
}

func (g *globals) adapt(body func(ctx context.Context, args []string) error, bounded bool) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if g.timeout <= 0 {
			return usagef("--timeout %v: want a positive duration such as 30s", g.timeout)
		}
		if err := g.checkTorFlags(); err != nil {
			return err
		}
		defer g.closeTor()
		err := g.prepareOnion(cmd, args)
		if err == nil {
			ctx, cancel := cmd.Context(), context.CancelFunc(func() {})
			if bounded {
				ctx, cancel = context.WithTimeout(ctx, g.timeout)
			}
			defer cancel()
			err = body(ctx, args)
		}
		return cli.Fail(err)
	}
}

// configDir resolves --config, $ALLIUM_CONFIG and the user's config dir.
func (g *globals) configDir() (api.Config, error) {
	dir, err := api.ConfigDir(g.config)
	return api.Config{Dir: dir}, err
}

// printJSON prints raw indented, whatever fields it has.
func (g *globals) printJSON(raw []byte) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := b.WriteTo(g.stdout)
	return err
}

// hostArg checks that a command got exactly its HOST.
func hostArg(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usagef("%s takes one HOST (an alias or ADDRESS:PORT), got %d arguments", cmd.Name(), len(args))
	}
	return nil
}

// completeHost offers the alias names for HOST.
func (g *globals) completeHost(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cfg, err := g.configDir()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	aliases, _ := cfg.Aliases()
	var names []string
	for _, a := range aliases {
		names = append(names, a.Name+"\t"+a.Address)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}
