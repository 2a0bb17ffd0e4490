package api

import (
	"context"
	"io"
)

// UnimplementedApps answers every apps request with 501. A Backend
// embeds it until it has images and containers.
type UnimplementedApps struct{}

var errNoApps = NotImplemented("this node does not run apps yet (images and containers are not implemented)")

func (UnimplementedApps) Images(context.Context) ([]Image, error)             { return nil, errNoApps }
func (UnimplementedApps) Image(context.Context, string) (Image, error)        { return Image{}, errNoApps }
func (UnimplementedApps) UploadOffset(context.Context, string) (int64, error) { return 0, errNoApps }
func (UnimplementedApps) PutImage(context.Context, string, int64, int64, io.Reader) (Image, error) {
	return Image{}, errNoApps
}
func (UnimplementedApps) RemoveImage(context.Context, string) error       { return errNoApps }
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
func (UnimplementedApps) Events(context.Context, bool, func(Event) error) error { return errNoApps }

// UnimplementedKeys answers every keys request with 501. A Backend
// embeds it until it manages keys.
type UnimplementedKeys struct{}

var errNoKeys = NotImplemented("this node does not manage keys over the API")

func (UnimplementedKeys) Keys(context.Context) ([]ClientKey, error) { return nil, errNoKeys }
func (UnimplementedKeys) AddKey(context.Context, ClientKey) (ClientKey, bool, error) {
	return ClientKey{}, false, errNoKeys
}
func (UnimplementedKeys) RemoveKey(context.Context, string) (ClientKey, error) {
	return ClientKey{}, errNoKeys
}
