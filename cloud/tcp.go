package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"allium/api"
)

func newTCP(g *globals) *cobra.Command {
	var nodeKey string
	var force bool
	cmd := &cobra.Command{
		Use:   "tcp HOST on|off",
		Short: "Switch a node's TCP port on or off",
		Long: `Switch the node's API TCP port (7707 unless its image says otherwise) on
or off, at once and across reboots. With it off, the node answers only on
its onion and its own unix socket: nothing on the VPS listens for the API.

Switching it off over TCP is refused while the node's onion is not
published, since it would leave no way back in; reach the node through its
onion first (cloud --via onion ...), or --force if you have its console.`,
		Example: `  cloud --via onion tcp web1 off
  cloud tcp web1 on`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 || (args[1] != "on" && args[1] != "off") {
				return usagef("tcp takes a HOST and on or off, such as: cloud tcp web1 off")
			}
			return nil
		},
		ValidArgsFunction: g.completeHost,
		RunE: g.runE(func(ctx context.Context, args []string) error {
			s, err := g.connect(args[0], nodeKey)
			if err != nil {
				return err
			}
			st, err := s.client.SetTCP(ctx, api.TCPRequest{Enabled: args[1] == "on", Force: force})
			if err != nil {
				return s.explain(err)
			}
			if st.TCP == "off" {
				_, err = fmt.Fprintf(g.stdout, "%s: TCP off; the API answers on the onion and the node's unix socket\n", s.name)
			} else {
				_, err = fmt.Fprintf(g.stdout, "%s: TCP on, listening on %s\n", s.name, st.TCP)
			}
			return err
		}),
	}
	nodeKeyFlag(cmd, &nodeKey)
	cmd.Flags().BoolVar(&force, "force", false, "switch TCP off even when the onion is not published")
	return cmd
}
