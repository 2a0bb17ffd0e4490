package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"allium/api"
)

func newUpdate(g *globals) *cobra.Command {
	var f struct {
		init    string
		check   bool
		nodeKey string
	}
	cmd := &cobra.Command{
		Use:   "update NAME... [--init PATH] [--check]",
		Short: "Send a node a new init, which it checks, stages and switches to",
		Long: `Send each node a new init (the binary that runs as its PID 1), one node
at a time, stopping at the first failure. The upload resumes after an
interruption, like an image's, and the node checks the digest. Before
it trusts the init, the node checks that it is a complete, static ELF
for its machine, runs "init version --json" in a helper process (with
a deadline), and refuses one that could not open its state.db or take
over from the running init; a refused init is removed and nothing
changes, and the reason is in the answer and the node's events.

The init is --init PATH, else the file "init" beside this cloud.

With --check the command stops once the node has accepted the init.
Without it, the node then switches to it in place: PID 1 re-executes
itself as the new init, which takes over the running containers (same
pids, logs going on) and the API's listeners; tor is restarted, so the
onion comes back once tor has published it again. The command waits
for the node to answer with the new version. Only a node in an OS
container switches in this build; a VM keeps the init staged and says
why.`,
		Example: `  cloud update web1 --check
  cloud update web1 web2 --init out/web1/init --check`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("update takes one NAME or more (an alias or ADDRESS:PORT)")
			}
			return nil
		},
		ValidArgsFunction: g.completeHost,
		RunE: g.runLongE(func(ctx context.Context, args []string) error {
			path, err := initPath(f.init)
			if err != nil {
				return err
			}
			return g.update(ctx, args, path, f.nodeKey, f.check)
		}),
	}
	cmd.Flags().StringVar(&f.init, "init", "", "the init to send (default: the file init beside cloud)")
	cmd.Flags().BoolVar(&f.check, "check", false, "send and have the node check it, and stop there")
	nodeKeyFlag(cmd, &f.nodeKey)
	return cmd
}

// initPath is --init, else the init beside the cloud executable.
func initPath(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", usagef("no --init, and cloud cannot find its own executable (%v): pass the init with --init PATH", err)
	}
	p := filepath.Join(filepath.Dir(exe), "init")
	if _, err := os.Stat(p); err != nil {
		return "", usagef("no --init, and no init beside cloud (%s): pass the init to send with --init PATH", p)
	}
	return p, nil
}

// switchWait bounds the wait for a node to answer with its new init.
const switchWait = 2 * time.Minute

func (g *globals) update(ctx context.Context, hosts []string, path, nodeKey string, check bool) error {
	img, err := g.openInit(ctx, path)
	if err != nil {
		return err
	}
	defer img.file.Close()
	for _, host := range hosts {
		s, err := g.connect(host, nodeKey)
		if err != nil {
			return err
		}
		in, err := g.pushInit(ctx, s, img)
		if err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "%s: accepted init %s (%s…, %s, state schema %d, handover %d); it is staged\n",
			s.name, in.Version, shortDigest(in.Digest), in.Arch, in.StateSchema, in.Handover)
		if check {
			continue
		}
		if err := g.switchInit(ctx, s, in); err != nil {
			return err
		}
	}
	return nil
}

// switchInit asks the node to switch to in, and waits until it answers
// with in's version.
func (g *globals) switchInit(ctx context.Context, s *session, in api.InitInfo) error {
	qctx, cancel := s.bounded(ctx)
	a, err := s.client.SwitchInit(qctx, in.Digest)
	cancel()
	if err != nil {
		return fmt.Errorf("%s: not switched: %w", s.name, s.explain(err))
	}
	fmt.Fprintf(g.stdout, "%s: %s\n", s.name, a.Status)
	var last error
	for deadline := time.Now().Add(switchWait); time.Now().Before(deadline); {
		qctx, cancel := s.bounded(ctx)
		n, err := s.client.Node(qctx)
		cancel()
		switch {
		case err == nil && n.Version == in.Version:
			how := ""
			if n.Update != nil && n.Update.Last != "" {
				how = " (" + n.Update.Last + ")"
			}
			fmt.Fprintf(g.stdout, "%s: running init %s%s\n", s.name, n.Version, how)
			return nil
		case err == nil && n.Update != nil && n.Update.Last != "" && n.Update.Staged != nil:
			last = errors.New(n.Update.Last)
		case err != nil:
			last = err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: did not answer with init %s within %v (last: %v); see `cloud info %s` and its events", s.name, in.Version, switchWait, last, s.name)
}

// openInit opens and hashes the init at path, and says what it is when
// it can run here.
func (g *globals) openInit(ctx context.Context, path string) (*image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s: not a regular file", path)
	}
	img := &image{path: path, file: f, size: fi.Size()}
	if err == nil {
		err = g.hash(img)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	if v, err := localVersion(ctx, path); err == nil {
		fmt.Fprintf(g.stdout, "%s: init %s (%s, state schema %d, handover %d), %s\n", path, v.Version, v.Arch, v.StateSchema, v.Handover, size(img.size))
	} else if runtime.GOOS == "linux" {
		fmt.Fprintf(g.stderr, "%s: cannot ask it its version here (%v); the node will check it\n", path, err)
	}
	return img, nil
}

// localVersion runs path version --json, where a Linux ELF can run.
func localVersion(ctx context.Context, path string) (api.InitVersion, error) {
	var v api.InitVersion
	if runtime.GOOS != "linux" {
		return v, errors.New("not on Linux")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, path, "version", "--json")
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return v, err
	}
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || v.Version == "" {
		return v, fmt.Errorf("it printed no version (%.100q)", out.Bytes())
	}
	return v, nil
}

// pushInit sends the init unless the node has it staged, and returns
// what the node found.
func (g *globals) pushInit(ctx context.Context, s *session, img *image) (api.InitInfo, error) {
	qctx, cancel := s.bounded(ctx)
	have, offset, err := s.client.InitState(qctx, img.digest)
	cancel()
	if err != nil {
		return api.InitInfo{}, s.explain(err)
	}
	opts := api.UploadOptions{Stall: s.timeout}
	var v *uploadView
	if have {
		fmt.Fprintf(g.stdout, "%s: init %s… already staged, not sending it\n", s.name, shortDigest(img.digest))
	} else {
		v = g.newUploadView(img, s.name, offset)
		opts.Progress = s.uploadProgress(v.update)
	}
	in, err := s.client.UploadInit(ctx, img.digest, img.file, img.size, opts)
	if v != nil {
		v.done(err)
	}
	if err != nil {
		return api.InitInfo{}, s.explain(err)
	}
	return in, nil
}
