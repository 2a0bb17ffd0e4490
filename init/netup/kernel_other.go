//go:build !linux

package netup

import (
	"errors"
	"log/slog"
	"net/netip"
	"time"
)

// newKernel on other systems returns a kernel that refuses everything, so
// the package builds anywhere and its pure parts test anywhere.
func newKernel() kernel { return unsupported{} }

type unsupported struct{}

func (unsupported) links() ([]link, error) { return nil, errors.ErrUnsupported }
func (unsupported) linkUp(string) error    { return errors.ErrUnsupported }
func (unsupported) addrReplace(string, netip.Prefix, time.Duration) error {
	return errors.ErrUnsupported
}
func (unsupported) addrDel(string, netip.Prefix) error { return errors.ErrUnsupported }
func (unsupported) routeReplace(route) error           { return errors.ErrUnsupported }
func (unsupported) setHostname(string) error           { return errors.ErrUnsupported }

func dialDHCP(string, string, *slog.Logger) (dhcpClient, error) { return nil, errors.ErrUnsupported }
