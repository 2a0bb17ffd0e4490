// Package handover is what one PID 1 hands to the next when it
// re-executes a new init in place (execve: pid 1 stays, its children stay
// its children, descriptors without close-on-exec survive). It is the one
// description of that state: a Doc, JSON in a memfd, and the descriptors
// it names, at the numbers it names them by.
//
//	old PID 1                                   new PID 1 (same pid)
//	freeze: API, supervisor, reaper
//	Doc{listeners, supervisor, ...} ──memfd──>  Read(ALLIUM_HANDOVER)
//	files: Pass (duplicates, CLOEXEC off) ──> Doc.File(i): *os.File
//	execve(new init, argv, env+ALLIUM_HANDOVER=FD)
//	                                            adopt, then report healthy
//
// Version is the protocol: a new init is accepted only when it speaks
// the running one's (init's update check). Anything added to Doc that an
// older reader would misread needs a new Version.
package handover

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Version is the handover protocol this build speaks.
const Version = 1

// Env names the descriptor of the handover memfd in the new init's
// environment.
const Env = "ALLIUM_HANDOVER"

// maxDoc bounds what Read reads: a Doc is small (a few KiB a container).
const maxDoc = 16 << 20

// Doc is everything that crosses the execve besides the processes.
type Doc struct {
	Version int `json:"version"`
	// From and To are the old and the new init's versions.
	From string `json:"from"`
	To   string `json:"to"`
	// Previous is the path of the init to go back to when the new one
	// does not report healthy by Deadline.
	Previous string    `json:"previous"`
	Deadline time.Time `json:"deadline"`
	// Booted is when the node booted (its uptime goes on), BootCount the
	// boot it is in: a handover is not a boot.
	Booted    time.Time `json:"booted"`
	BootCount uint64    `json:"boot_count"`
	// Listeners are the API's listening sockets, still listening: a
	// connection made during the handover waits in the backlog.
	Listeners []Listener `json:"listeners,omitempty"`
	// Supervisor is supervisor.Frozen, its files among Files.
	Supervisor json.RawMessage `json:"supervisor,omitempty"`
	// Node is init's own description of what its boot found and set
	// up (the mounts, the data root), which the new init, the same
	// process, must not set up again; init defines it. Empty from an
	// init that does not describe it.
	Node json.RawMessage `json:"node,omitempty"`
	// Files are the descriptors handed over, by number; the parts'
	// descriptions refer to them by index into this list.
	Files []File `json:"files"`
}

// Listener is one of the API's listening sockets.
type Listener struct {
	Network string `json:"network"` // "tcp" or "unix"
	Addr    string `json:"addr"`
	File    int    `json:"file"` // index into Doc.Files
}

// File is one descriptor handed over.
type File struct {
	FD   int    `json:"fd"`
	Name string `json:"name"` // what it is, for messages
}

// Pass prepares files to cross the execve, for an owner that goes on
// using them when the execve fails: each crosses as a duplicate (the same open file, its
// non-blocking mode untouched, close-on-exec off, at a new number),
// and the originals stay as they are. drop closes the duplicates,
// after a failed execve.
func Pass(files []*os.File) (out []File, drop func(), err error) {
	var fds []int
	drop = func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	for _, f := range files {
		rc, err := f.SyscallConn()
		if err != nil {
			drop()
			return nil, nil, fmt.Errorf("handover: pass %s: %w", f.Name(), err)
		}
		nfd := -1
		cerr := rc.Control(func(fd uintptr) {
			nfd, err = unix.FcntlInt(fd, unix.F_DUPFD, 3) // no FD_CLOEXEC: it crosses
		})
		if err = cmp.Or(cerr, err); err != nil {
			drop()
			return nil, nil, fmt.Errorf("handover: pass %s: %w", f.Name(), err)
		}
		fds = append(fds, nfd)
		out = append(out, File{FD: nfd, Name: f.Name()})
	}
	return out, drop, nil
}

// Write puts d in a new memfd, close-on-exec off, and returns it: its
// number goes in the new init's environment as Env=FD.
func Write(d Doc) (*os.File, error) {
	d.Version = Version
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("handover: %w", err)
	}
	fd, err := unix.MemfdCreate("allium-handover", 0) // no MFD_CLOEXEC: it crosses
	if err != nil {
		return nil, fmt.Errorf("handover: memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "allium-handover")
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, fmt.Errorf("handover: write: %w", err)
	}
	return f, nil
}

// EnvValue is the Env entry for the memfd f.
func EnvValue(f *os.File) string { return Env + "=" + strconv.Itoa(int(f.Fd())) }

// ErrNone means this init was not started by a handover.
var ErrNone = errors.New("handover: none (" + Env + " is not set)")

// FromEnv reads the Doc the old init left, if $ALLIUM_HANDOVER names
// one, and closes its memfd. ErrNone when there is none.
func FromEnv() (Doc, error) {
	v, ok := os.LookupEnv(Env)
	if !ok {
		return Doc{}, ErrNone
	}
	os.Unsetenv(Env) // not for the children
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return Doc{}, fmt.Errorf("handover: %s=%q: not a descriptor", Env, v)
	}
	f := os.NewFile(uintptr(fd), "allium-handover")
	defer f.Close()
	return Read(f)
}

// Read reads a Doc from r (the memfd, from its start) and checks it.
func Read(r io.ReaderAt) (Doc, error) {
	b, err := io.ReadAll(io.NewSectionReader(r, 0, maxDoc+1))
	if err != nil {
		return Doc{}, fmt.Errorf("handover: read: %w", err)
	}
	if len(b) > maxDoc {
		return Doc{}, fmt.Errorf("handover: more than %d bytes", maxDoc)
	}
	var d Doc
	if err := json.Unmarshal(b, &d); err != nil {
		return Doc{}, fmt.Errorf("handover: %w", err)
	}
	return d, d.check()
}

func (d Doc) check() error {
	if d.Version != Version {
		return fmt.Errorf("handover: protocol %d, this init speaks %d", d.Version, Version)
	}
	seen := map[int]bool{}
	for i, f := range d.Files {
		if f.FD < 3 || seen[f.FD] {
			return fmt.Errorf("handover: files[%d]: fd %d is not a descriptor of its own", i, f.FD)
		}
		seen[f.FD] = true
	}
	for i, l := range d.Listeners {
		if l.File < 0 || l.File >= len(d.Files) {
			return fmt.Errorf("handover: listeners[%d] (%s %s): file %d of %d", i, l.Network, l.Addr, l.File, len(d.Files))
		}
		if l.Network != "tcp" && l.Network != "unix" {
			return fmt.Errorf("handover: listeners[%d]: network %q", i, l.Network)
		}
	}
	return nil
}

// File opens entry i of d.Files, close-on-exec on again (the children
// of the new init must not inherit it).
func (d Doc) File(i int) (*os.File, error) {
	if i < 0 || i >= len(d.Files) {
		return nil, fmt.Errorf("handover: file %d of %d", i, len(d.Files))
	}
	e := d.Files[i]
	if _, err := unix.FcntlInt(uintptr(e.FD), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		return nil, fmt.Errorf("handover: %s (fd %d): %w", e.Name, e.FD, err)
	}
	return os.NewFile(uintptr(e.FD), e.Name), nil
}
