package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"allium/api"
)

func newReboot(g *globals) *cobra.Command {
	return g.powerCmd("reboot", "/v1/node/reboot", "Reboot a node",
		`Ask a node to reboot. It answers first, then stops its containers,
closes its state and reboots; the command does not wait for it to come back.`)
}

func newPoweroff(g *globals) *cobra.Command {
	return g.powerCmd("poweroff", "/v1/node/poweroff", "Power a node off",
		`Ask a node to power off. It answers first, then stops its containers,
closes its state and powers off. Only the VPS provider's panel can turn
it back on.`)
}

// powerCmd makes a command that POSTs to path and prints the answer.
func (g *globals) powerCmd(name, path, short, long string) *cobra.Command {
	var nodeKey string
	cmd := &cobra.Command{
		Use:   name + " HOST",
		Short: short,
		Long:  long,
		Example: fmt.Sprintf(`  cloud %[1]s web1
  cloud %[1]s 203.0.113.7:7707 --node-key ed25519:BASE64`, name),
		Args:              hostArg,
		ValidArgsFunction: g.completeHost,
		RunE: g.runE(func(ctx context.Context, args []string) error {
			return g.post(ctx, args[0], nodeKey, path)
		}),
	}
	nodeKeyFlag(cmd, &nodeKey)
	return cmd
}

// post sends an action and prints "web1: rebooting".
func (g *globals) post(ctx context.Context, host, nodeKey, path string) error {
	s, err := g.connect(host, nodeKey)
	if err != nil {
		return err
	}
	raw, err := s.call(ctx, http.MethodPost, path)
	if err != nil {
		return err
	}
	if g.json {
		return g.printJSON(raw)
	}
	var a api.Accepted
	if err := json.Unmarshal(raw, &a); err != nil {
		return fmt.Errorf("%s: reading its answer: %w", s.target, err)
	}
	_, err = fmt.Fprintf(g.stdout, "%s: %s\n", s.name, a.Status)
	return err
}
