package api

import (
	"context"
	"io"
)

// UnimplementedApps answers every request about images, containers and
// events with 501 and noApps. PID 1 serves it when its images and
// containers are unavailable, because its state database or data root
// did not come up; its warnings say why.
type UnimplementedApps struct{}

// noApps says why a node answers UnimplementedApps; the client says it
// too, for a HEAD whose answer has no body.
const noApps = "images and containers are unavailable on this node: its state database or data root did not come up (cloud info shows why)"

var errNoApps = NotImplemented(noApps)

func (UnimplementedApps) Images(context.Context) ([]Image, error)             { return nil, errNoApps }
func (UnimplementedApps) Image(context.Context, string) (Image, error)        { return Image{}, errNoApps }
func (UnimplementedApps) UploadOffset(context.Context, string) (int64, error) { return 0, errNoApps }
func (UnimplementedApps) PutImage(context.Context, string, int64, int64, io.Reader) (Image, error) {
	return Image{}, errNoApps
}
func (UnimplementedApps) RemoveImage(context.Context, string) error       { return errNoApps }
func (UnimplementedApps) Uploads(context.Context) ([]Upload, error)       { return nil, errNoApps }
func (UnimplementedApps) Containers(context.Context) ([]Container, error) { return nil, errNoApps }
func (UnimplementedApps) Container(context.Context, string) (Container, error) {
	return Container{}, errNoApps
}
func (UnimplementedApps) PutContainer(context.Context, string, ContainerRequest) (Container, error) {
	return Container{}, errNoApps
}
func (UnimplementedApps) StartContainer(context.Context, string) (Container, error) {
	return Container{}, errNoApps
}
func (UnimplementedApps) StopContainer(context.Context, string) (Container, error) {
	return Container{}, errNoApps
}
func (UnimplementedApps) RestartContainer(context.Context, string) (Container, error) {
	return Container{}, errNoApps
}
func (UnimplementedApps) SignalContainer(context.Context, string, string) (Container, error) {
	return Container{}, errNoApps
}
func (UnimplementedApps) RemoveContainer(context.Context, string) error { return errNoApps }
func (UnimplementedApps) Logs(context.Context, string, LogOptions, io.Writer) error {
	return errNoApps
}
func (UnimplementedApps) ContainerStats(context.Context, string) (ContainerStats, error) {
	return ContainerStats{}, errNoApps
}
func (UnimplementedApps) Events(context.Context, bool, func(Event) error) error { return errNoApps }

// UnimplementedKeys answers every request about client keys with 501.
// A Backend that does not manage keys over the API, such as a test's,
// embeds it.
type UnimplementedKeys struct{}

var errNoKeys = NotImplemented("this node does not manage keys over the API")

func (UnimplementedKeys) Keys(context.Context) ([]ClientKey, error) { return nil, errNoKeys }
func (UnimplementedKeys) AddKey(context.Context, ClientKey) (ClientKey, bool, error) {
	return ClientKey{}, false, errNoKeys
}
func (UnimplementedKeys) RemoveKey(context.Context, string) (ClientKey, error) {
	return ClientKey{}, errNoKeys
}
