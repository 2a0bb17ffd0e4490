package main

import (
	"context"
	"io"
	"os"

	"github.com/spf13/cobra"

	"allium/internal/cli"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is the whole program, callable from tests. It returns the exit
// status: 0 ok, 1 failure, 2 usage.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	return cli.Report(stderr, "mkimage", cmd.CommandPath(), err)
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "mkimage",
		Short: "Build Allium appliance images",
		Long: `mkimage builds an Allium appliance: a kernel, an initramfs holding the
init binary and the node's keys, a data disk, and the client-side alias
that lets 'cloud' reach the node. It can then boot the appliance under QEMU.`,
		Example: `  mkimage appliance --name web1 -o out/web1
  mkimage qemu out/web1
  cloud info web1`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(cmd.ErrOrStderr())
			cmd.Usage()
			return usagef("no command given")
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(newApplianceCmd(), newQemuCmd(), newPackCmd())
	return root
}

// runE adapts a command's function to cobra, marking what it returns as
// a failure (exit 1) unless it is a usage error (exit 2).
func runE(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error { return cli.Fail(f(cmd, args)) }
}
