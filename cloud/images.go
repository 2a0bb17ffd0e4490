package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"allium/api"
)

func newImages(g *globals) *cobra.Command {
	var nodeKey string
	var partial bool
	cmd := &cobra.Command{
		Use:   "images HOST",
		Short: "List a node's images",
		Long: `List the images on a node: digest, the manifest's name, the archive's
size, when the node unpacked it, and the containers that run it.

With --partial, list the partial uploads the node keeps so that an
interrupted cloud start resumes: how much of each arrived, and when the
node drops it. cloud rmi removes one.`,
		Example: `  cloud images web1
  cloud images web1 --partial
  cloud images web1 --json`,
		Args:              hostArg,
		ValidArgsFunction: g.completeHost,
		RunE: g.runE(func(ctx context.Context, args []string) error {
			if partial {
				return g.uploads(ctx, args[0], nodeKey)
			}
			return g.images(ctx, args[0], nodeKey)
		}),
	}
	nodeKeyFlag(cmd, &nodeKey)
	cmd.Flags().BoolVar(&partial, "partial", false, "list the partial uploads instead")
	return cmd
}

// uploads lists the partial uploads.
func (g *globals) uploads(ctx context.Context, host, nodeKey string) error {
	s, err := g.connect(host, nodeKey)
	if err != nil {
		return err
	}
	if g.json {
		return g.printCall(ctx, s, "/v1/uploads")
	}
	ups, err := s.client.Uploads(ctx)
	if err != nil {
		return s.explain(err)
	}
	if len(ups) == 0 {
		fmt.Fprintf(g.stderr, "no partial uploads on %s\n", s.name)
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "DIGEST\tRECEIVED\tOF\tLAST WRITE\tEXPIRES IN")
	for _, u := range ups {
		of := "?"
		if u.Length > 0 {
			of = size(u.Length)
		}
		last := ago(u.Modified) + " ago"
		if u.Active {
			last = "uploading now"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", shortDigest(u.Digest), size(u.Size), of, last, until(u.Expires))
	}
	return tw.Flush()
}

func (g *globals) images(ctx context.Context, host, nodeKey string) error {
	s, err := g.connect(host, nodeKey)
	if err != nil {
		return err
	}
	if g.json {
		return g.printCall(ctx, s, "/v1/images")
	}
	imgs, err := s.client.Images(ctx)
	if err != nil {
		return s.explain(err)
	}
	if len(imgs) == 0 {
		fmt.Fprintf(g.stderr, "no images on %s; cloud start %s FILE sends one\n", s.name, s.name)
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "DIGEST\tNAME\tSIZE\tCREATED\tUSED BY")
	for _, img := range imgs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\t%s\n", shortDigest(img.Digest), img.Name, size(img.Size),
			ago(img.Created), orDash(strings.Join(img.UsedBy, ", ")))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newRmi(g *globals) *cobra.Command {
	var nodeKey string
	cmd := &cobra.Command{
		Use:   "rmi HOST DIGEST|NAME",
		Short: "Remove an image from a node",
		Long: `Remove an image from a node, named by its digest (or the start of it,
as cloud images shows it) or by its manifest's name when only one image
has that name. An image a container uses stays: remove the container
first (cloud rm). A digest of a partial upload (cloud images --partial)
removes that upload.`,
		Example: `  cloud rmi web1 sha256:3f2a9c1b0d4e
  cloud rmi web1 3f2a9c1b
  cloud rmi web1 app`,
		Args:              hostAnd("DIGEST or NAME"),
		ValidArgsFunction: g.completeHost,
		RunE: g.runE(func(ctx context.Context, args []string) error {
			return g.rmi(ctx, args[0], args[1], nodeKey)
		}),
	}
	nodeKeyFlag(cmd, &nodeKey)
	return cmd
}

func (g *globals) rmi(ctx context.Context, host, arg, nodeKey string) error {
	s, err := g.connect(host, nodeKey)
	if err != nil {
		return err
	}
	imgs, err := s.client.Images(ctx)
	if err != nil {
		return s.explain(err)
	}
	img, err := pickImage(imgs, arg, s.name)
	if errors.Is(err, errNoImage) {
		if up, ok := g.pickUpload(ctx, s, arg); ok {
			return g.rmUpload(ctx, s, up)
		}
	}
	if err != nil {
		return err
	}
	if err := s.client.RemoveImage(ctx, img.Digest); err != nil {
		var e *api.Error
		if errors.As(err, &e) && e.Status == http.StatusConflict {
			return fmt.Errorf("%w\nRemove the containers that use it first (cloud rm %s NAME)", s.explain(err), s.name)
		}
		return s.explain(err)
	}
	fmt.Fprintf(g.stdout, "removed image %s (%s)\n", img.Digest, img.Name)
	return nil
}

// pickImage finds the one image that arg names: a digest, the start of
// one (with or without "sha256:"), or a manifest name.
func pickImage(imgs []api.Image, arg, node string) (api.Image, error) {
	hex := strings.TrimPrefix(arg, "sha256:")
	var found []api.Image
	for _, img := range imgs {
		byDigest := isHex(hex) && len(hex) >= 4 && strings.HasPrefix(strings.TrimPrefix(img.Digest, "sha256:"), hex)
		if byDigest || img.Name == arg {
			found = append(found, img)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return api.Image{}, fmt.Errorf("%w %q on %s; cloud images %s lists them (--partial: the partial uploads)", errNoImage, arg, node, node)
	}
	var names []string
	for _, img := range found {
		names = append(names, shortDigest(img.Digest)+" ("+img.Name+")")
	}
	return api.Image{}, fmt.Errorf("%q names %d images on %s: %s; give more of the digest",
		arg, len(found), node, strings.Join(names, ", "))
}

var errNoImage = errors.New("no image")

// pickUpload finds the one partial upload whose digest arg starts.
func (g *globals) pickUpload(ctx context.Context, s *session, arg string) (api.Upload, bool) {
	hex := strings.TrimPrefix(arg, "sha256:")
	if !isHex(hex) || len(hex) < 4 {
		return api.Upload{}, false
	}
	ups, err := s.client.Uploads(ctx)
	if err != nil {
		return api.Upload{}, false // an older node, or none: the image's error says enough
	}
	var found []api.Upload
	for _, u := range ups {
		if strings.HasPrefix(strings.TrimPrefix(u.Digest, "sha256:"), hex) {
			found = append(found, u)
		}
	}
	if len(found) != 1 {
		return api.Upload{}, false
	}
	return found[0], true
}

func (g *globals) rmUpload(ctx context.Context, s *session, u api.Upload) error {
	if err := s.client.RemoveImage(ctx, u.Digest); err != nil {
		return s.explain(err)
	}
	fmt.Fprintf(g.stdout, "removed the partial upload %s (%s kept)\n", u.Digest, size(u.Size))
	return nil
}

func isHex(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return s != ""
}
