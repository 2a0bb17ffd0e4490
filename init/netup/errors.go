package netup

import "errors"

var (
	// ErrNoLink means the requested link (or any ethernet link) did not
	// appear in time.
	ErrNoLink = errors.New("no network link")
	// ErrNoLease means no DHCP server answered in time. The lease loop is
	// still running when Up returns it, and applies a lease when one comes.
	ErrNoLease = errors.New("no dhcp lease")
)

// errNak marks a DHCPNAK: the server refuses the address.
var errNak = errors.New("the dhcp server said no (nak)")
