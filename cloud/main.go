package main

import (
	"context"
	"io"
	"os"

	"allium/internal/cli"
)

func main() { os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

// run is the whole CLI: it builds the command tree afresh, runs args
// through it and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	return cli.Report(stderr, "cloud", cmd.CommandPath(), err)
}

// usagef is cli.Usagef, by the short name the commands use.
func usagef(format string, args ...any) error { return cli.Usagef(format, args...) }
