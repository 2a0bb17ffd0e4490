package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"time"

	"allium/manifest"

	"github.com/spf13/cobra"

	"allium/api"
)

// startFlags are the flags of cloud start.
type startFlags struct {
	nodeKey string
	name    string
	wait    waitFlags
}

const startLong = `Push an image to a node and run it as a container.

cloud first reads manifest.json from the archive and checks it; a bad
manifest stops here, and nothing is sent. It then asks the node whether
it has the image's digest: if so, nothing is uploaded. Otherwise it
uploads the archive, resuming from where the node stopped if the
connection drops (also after an earlier, interrupted cloud start).

The container is named after the file, without its directory and its
archive endings (bar/foo.txz and foo.tar.zst both run as foo), unless
--name says otherwise. Starting a new image under a name that runs
replaces that container: the old one stops, the new one starts, and the
volumes carry over. Starting the same image again starts the container
if it is stopped, and otherwise changes nothing.

cloud then waits (up to --wait) until the container runs, or is ready if
its manifest has a readiness probe, and says what happened; if it fails,
it shows the last lines of its log.

With a NAME that is no file here, it starts that container on the node
again, as the operator's start: it clears crashloop and boot-loop
protection's hold.`

func newStart(g *globals) *cobra.Command {
	var f startFlags
	cmd := &cobra.Command{
		Use:   "start HOST FILE|NAME",
		Short: "Push an image and run it as a container",
		Long:  startLong,
		Example: `  cloud start web1 app.txz                      # runs as "app"
  cloud start 203.0.113.7:7707 bar/foo.txz --node-key ed25519:BASE64   # runs as "foo"
  cloud start web1 app.tar.zst --name app-staging
  cloud start web1 app.txz --wait 5m            # a slow readiness probe
  cloud start web1 app.txz --no-wait
  cloud start web1 app                          # starts the container app again (no file app here)`,
		Args:              hostAnd("FILE"),
		ValidArgsFunction: g.completeHostThenFile,
		RunE: g.runLongE(func(ctx context.Context, args []string) error {
			return g.start(ctx, args[0], args[1], f)
		}),
	}
	nodeKeyFlag(cmd, &f.nodeKey)
	cmd.Flags().StringVar(&f.name, "name", "", "the container's `NAME` (default: the file's name without its archive endings)")
	f.wait.add(cmd, "until the container runs")
	return cmd
}

func (g *globals) start(ctx context.Context, host, file string, f startFlags) error {
	if byName(file, f.name) {
		return g.startExisting(ctx, host, file, f)
	}
	name, err := startName(file, f.name)
	if err != nil {
		return err
	}
	if err := f.wait.check(); err != nil {
		return err
	}
	s, err := g.connect(host, f.nodeKey)
	if err != nil {
		return err
	}
	img, err := openImage(ctx, file)
	if err != nil {
		return fmt.Errorf("%w\nnothing was sent to %s", err, s.name)
	}
	defer img.Close()
	if err := g.hash(img); err != nil {
		return err
	}
	if err := g.push(ctx, s, img); err != nil {
		return err
	}
	if err := g.deploy(ctx, s, name, img.digest); err != nil || f.wait.no {
		return err
	}
	return g.waitUp(ctx, s, name, img.digest, f.wait.limit, nil)
}

// byName reports whether start's argument names a container on the
// node rather than a file: no such file, and a valid container name.
func byName(arg, flag string) bool {
	if flag != "" || manifest.ValidName(arg) != nil {
		return false
	}
	_, err := os.Stat(arg)
	return errors.Is(err, fs.ErrNotExist)
}

// startExisting starts the container called name, as the operator's
// start (it clears crashloop and boot-loop protection's hold), and
// waits until it runs.
func (g *globals) startExisting(ctx context.Context, host, name string, f startFlags) error {
	if err := f.wait.check(); err != nil {
		return err
	}
	s, err := g.connect(host, f.nodeKey)
	if err != nil {
		return err
	}
	before, err := s.client.Container(ctx, name)
	if err != nil {
		return s.explain(err)
	}
	if _, err := s.act(ctx, name, s.client.StartContainer); err != nil || f.wait.no {
		return err
	}
	if before.State == api.StateRunning {
		return g.waitUp(ctx, s, name, "", f.wait.limit, nil) // already running: nothing newer to wait for
	}
	return g.waitUp(ctx, s, name, "", f.wait.limit, &before)
}

// startName is --name, or the file's name without its archive endings.
func startName(file, flag string) (string, error) {
	if flag != "" {
		if err := manifest.ValidName(flag); err != nil {
			return "", usagef("--name %v", err)
		}
		return flag, nil
	}
	name := baseName(file)
	if err := manifest.ValidName(name); err != nil {
		return "", usagef("container name %v (from the file name %s); choose one with --name", err, file)
	}
	return name, nil
}

// hash computes the image's digest, with a progress bar for a big file
// on a terminal.
func (g *globals) hash(img *image) error {
	bar := g.newBar(img.size, "checksumming "+img.path, bigFile)
	err := img.hash(bar.set)
	bar.finish()
	return err
}

// bigFile is the size from which checksumming shows a bar.
const bigFile = 64 << 20

// push sends the image unless the node has it.
func (g *globals) push(ctx context.Context, s *session, img *image) error {
	qctx, cancel := s.bounded(ctx)
	have, offset, err := s.client.ImageState(qctx, img.digest)
	cancel()
	if err != nil {
		return s.explain(err)
	}
	if have {
		fmt.Fprintf(g.stdout, "image %s… already on %s, not sending it\n", shortDigest(img.digest), s.name)
		return nil
	}
	v := g.newUploadView(img, s.name, offset)
	_, err = s.client.Upload(ctx, img.digest, img.file, img.size, api.UploadOptions{Progress: s.uploadProgress(v.update), Stall: s.timeout})
	v.done(err)
	if err != nil {
		return s.explain(err)
	}
	return nil
}

// deploy creates the container, replaces its image, or starts it, and
// says which.
func (g *globals) deploy(ctx context.Context, s *session, name, digest string) error {
	old, had, err := s.existing(ctx, name)
	if err != nil {
		return err
	}
	qctx, cancel := s.bounded(ctx)
	defer cancel()
	c, err := s.client.PutContainer(qctx, name, api.ContainerRequest{Image: digest})
	if err != nil {
		return s.explain(err)
	}
	switch {
	case !had:
		fmt.Fprintf(g.stdout, "created %s from %s…\n", name, shortDigest(digest))
	case old.Image != digest:
		fmt.Fprintf(g.stdout, "replaced %s (%s… → %s…)\n", name, shortDigest(old.Image), shortDigest(digest))
	case c.Desired != "running" || down(c.State):
		if _, err := s.client.StartContainer(qctx, name); err != nil {
			return s.explain(err)
		}
		fmt.Fprintf(g.stdout, "starting %s again (%s…)\n", name, shortDigest(digest))
	default:
		fmt.Fprintf(g.stdout, "%s already runs %s…\n", name, shortDigest(digest))
	}
	return nil
}

// existing returns the named container, and whether there is one.
func (s *session) existing(ctx context.Context, name string) (api.Container, bool, error) {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	c, err := s.client.Container(ctx, name)
	var e *api.Error
	if errors.As(err, &e) && e.Status == http.StatusNotFound && e.Code == api.CodeNotFound {
		return c, false, nil
	}
	if err != nil {
		return c, false, s.explain(err)
	}
	return c, true, nil
}

// down reports whether a container in state is not running nor about
// to run.
func down(state string) bool {
	switch state {
	case api.StateStopped, api.StateExited, api.StateFailed, api.StateCrashloop:
		return true
	}
	return false
}

// hostAnd checks that a command got HOST and one more argument.
func hostAnd(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 2 {
			return usagef("%s takes HOST and %s, got %d argument%s", cmd.Name(), what, len(args), plural(len(args)))
		}
		return nil
	}
}

// completeHostThenFile offers alias names, then files.
func (g *globals) completeHostThenFile(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
	if len(args) == 1 {
		return nil, cobra.ShellCompDirectiveDefault
	}
	return g.completeHost(cmd, args, prefix)
}

// waitFlags are --wait and --no-wait.
type waitFlags struct {
	limit time.Duration
	no    bool
}

func (w *waitFlags) add(cmd *cobra.Command, until string) {
	cmd.Flags().DurationVar(&w.limit, "wait", 60*time.Second, "how long to wait "+until)
	cmd.Flags().BoolVar(&w.no, "no-wait", false, "do not wait "+until)
}

func (w *waitFlags) check() error {
	if w.limit <= 0 {
		return usagef("--wait %v: want a positive duration such as 60s (or --no-wait)", w.limit)
	}
	return nil
}
