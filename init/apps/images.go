package apps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"allium/api"
	"allium/imagestore"
)

func (a *Service) Images(ctx context.Context) ([]api.Image, error) {
	infos, err := a.store.List()
	if err != nil {
		return nil, err
	}
	users, _, _ := a.imageUsers()
	out := make([]api.Image, 0, len(infos))
	for _, i := range infos {
		out = append(out, toImage(i, users[i.Digest]))
	}
	return out, nil
}

func (a *Service) Image(ctx context.Context, digest string) (api.Image, error) {
	i, err := a.store.Image(digest)
	if errors.Is(err, imagestore.ErrNotFound) {
		return api.Image{}, api.NotFound("image %s is not on this node", digest)
	}
	if err != nil {
		return api.Image{}, err
	}
	users, _, _ := a.imageUsers()
	return toImage(i, users[digest]), nil
}

func toImage(i imagestore.Info, users []string) api.Image {
	return api.Image{Digest: i.Digest, Name: i.Name, Size: i.Size, Created: i.Created, UsedBy: users}
}

// imageUsers maps each digest to the containers that run it: those
// state.db records, and the roots on disk (which may have no record
// after a recovery of state.db). unknown lists roots on disk whose
// image is not known; err is state.db's.
func (a *Service) imageUsers() (users map[string][]string, unknown []string, err error) {
	cs, err := a.db.Containers()
	if err != nil {
		a.log.Error("apps: reading containers", "err", err)
	}
	users, unknown = a.roots.diskImages()
	for _, c := range cs {
		if !slices.Contains(users[c.Image], c.Name) {
			users[c.Image] = append(users[c.Image], c.Name)
		}
		unknown = slices.DeleteFunc(unknown, func(n string) bool { return n == c.Name })
	}
	return users, unknown, err
}

func (a *Service) UploadOffset(ctx context.Context, digest string) (int64, error) {
	return a.store.Offset(digest), nil
}

func (a *Service) PutImage(ctx context.Context, digest string, offset, total int64, body io.Reader) (api.Image, error) {
	kept, err := a.store.Write(ctx, digest, offset, total, body)
	if errors.Is(err, imagestore.ErrTooLarge) || errors.Is(err, imagestore.ErrNoSpace) {
		a.events.publish(api.Event{Type: api.EventImage, Image: digest, Message: "upload refused: " + err.Error()})
	}
	if err != nil {
		return api.Image{}, imageError(digest, err)
	}
	if kept < total {
		return api.Image{}, fmt.Errorf("upload of %s stopped at %d of %d bytes", digest, kept, total)
	}
	img, err := a.Image(ctx, digest)
	if err == nil {
		a.events.publish(api.Event{Type: api.EventImage, Image: digest, Message: fmt.Sprintf("image %s (%s) unpacked", img.Name, digest)})
	}
	return img, err
}

// imageError maps the store's errors to honest statuses.
func imageError(digest string, err error) error {
	var off *imagestore.OffsetError
	switch {
	case errors.As(err, &off):
		return api.OffsetMismatch(digest, off.Kept)
	case errors.Is(err, imagestore.ErrBusy):
		return api.UploadBusy("%v", err)
	case errors.Is(err, imagestore.ErrTooLarge):
		return api.TooLarge("%v", err)
	case errors.Is(err, imagestore.ErrNoSpace):
		return api.NoSpace("%v", err)
	case errors.Is(err, imagestore.ErrBadDigest), errors.Is(err, imagestore.ErrDigest),
		errors.Is(err, imagestore.ErrInvalid):
		return api.BadRequest("%v", err)
	}
	return err
}

func (a *Service) RemoveImage(ctx context.Context, digest string) error {
	users, _, err := a.imageUsers()
	if err != nil {
		return err
	}
	if len(users[digest]) > 0 {
		return api.Conflict("image %s is used by %v; remove those containers first", digest, users[digest])
	}
	err = a.store.Remove(digest)
	switch {
	case errors.Is(err, imagestore.ErrNotFound):
		return api.NotFound("image %s is not on this node, nor an upload of it", digest)
	case errors.Is(err, imagestore.ErrBusy):
		return api.Conflict("%v; try again once it is done", err)
	}
	a.keepStateReserve()
	return err
}

// Uploads lists the partial uploads the node keeps, after dropping the
// expired ones.
func (a *Service) Uploads(ctx context.Context) ([]api.Upload, error) {
	ps, err := a.store.Partials()
	if err != nil {
		return nil, err
	}
	out := make([]api.Upload, 0, len(ps))
	for _, p := range ps {
		out = append(out, api.Upload{Digest: p.Digest, Size: p.Size, Length: p.Length, Modified: p.Modified,
			Expires: p.Expires, Active: p.Active})
	}
	return out, nil
}

// collect removes images no container uses, but for fresh ones. It
// removes nothing when it cannot know every user: state.db unreadable,
// or a container root on disk whose image is not known; then it
// returns why, for the operator.
func (a *Service) collect() (skipped string) {
	users, unknown, err := a.imageUsers()
	switch {
	case err != nil:
		skipped = "images were not collected: the containers in state.db are unreadable (" + err.Error() + ")"
	case len(unknown) > 0:
		skipped = fmt.Sprintf("images were not collected: the image of the container roots %v on disk is not known", unknown)
	}
	if skipped != "" {
		a.log.Warn("apps: " + skipped)
		return skipped
	}
	removed, err := a.store.GC(func(d string) bool {
		if len(users[d]) > 0 {
			return true
		}
		i, err := a.store.Image(d)
		return err == nil && time.Since(i.Created) < gcGrace
	})
	if err != nil {
		a.log.Error("apps: collecting images", "err", err)
	}
	a.keepStateReserve()
	for _, d := range removed {
		a.events.publish(api.Event{Type: api.EventImage, Image: d, Message: "image " + d + " collected: no container uses it"})
	}
	return ""
}
