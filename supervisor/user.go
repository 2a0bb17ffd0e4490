package supervisor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"allium/supervisor/idmap"
)

// User is who a workload runs as, resolved from the image's /etc/passwd
// and /etc/group.
type User struct {
	UID, GID uint32
	// Groups are the supplementary groups: every group of /etc/group
	// that lists the user's name.
	Groups []uint32
	// Home is the passwd entry's home directory; "/" without one.
	Home string
}

// passwdEntry is one line of /etc/passwd.
type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

// groupEntry is one line of /etc/group.
type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// LookupUser resolves a manifest's user ("NAME", "UID", "UID:GID" or ""
// for root) in the image rooted at root. A name must be in root's
// /etc/passwd. A UID that is not there runs with GID = UID unless given,
// and home "/". The files are opened inside root (os.Root), so a symlink
// the workload planted cannot make PID 1 read a file of the node.
func LookupUser(root, user string) (User, error) {
	passwd, err := readImageFile(root, "etc/passwd")
	if err != nil {
		return User{}, fmt.Errorf("supervisor: user %q: %w", user, err)
	}
	group, err := readImageFile(root, "etc/group")
	if err != nil {
		return User{}, fmt.Errorf("supervisor: user %q: %w", user, err)
	}
	u, err := resolveUser(user, parsePasswd(passwd), parseGroup(group))
	if err != nil {
		return User{}, fmt.Errorf("supervisor: user %q: %w", user, err)
	}
	return u, nil
}

// resolveUser is LookupUser on parsed files.
func resolveUser(user string, pw []passwdEntry, gr []groupEntry) (User, error) {
	if user == "" {
		user = "0"
	}
	uidStr, gidStr, hasGID := strings.Cut(user, ":")
	uid, numeric := parseID(uidStr)
	var e *passwdEntry
	for i := range pw {
		if (numeric && pw[i].uid == uid) || (!numeric && pw[i].name == uidStr) {
			e = &pw[i]
			break
		}
	}
	u := User{UID: uid, GID: uid, Home: "/"}
	switch {
	case e != nil:
		u = User{UID: e.uid, GID: e.gid, Home: e.home, Groups: memberOf(e.name, gr)}
	case !numeric:
		return User{}, fmt.Errorf("no such user in the image's /etc/passwd: %w", ErrUnknownUser)
	}
	if hasGID {
		gid, ok := parseID(gidStr)
		if !ok {
			return User{}, fmt.Errorf("group %q: want a number", gidStr)
		}
		u.GID = gid
	}
	if u.Home == "" {
		u.Home = "/"
	}
	if u.UID == InitUID || u.GID == InitUID {
		return User{}, fmt.Errorf("uid or gid %d is the node's own (PID 1's real uid): a workload with it could signal PID 1; choose another", InitUID)
	}
	return u, nil
}

// InitUID is PID 1's real and saved uid and gid (its effective ones stay
// 0, so it keeps its capabilities). The kernel lets a process signal
// another only with CAP_KILL or when one of its real and effective uids
// is the other's real or saved uid; no workload may run as InitUID, so a
// container's root, which has no CAP_KILL at the chroot rung, cannot
// signal PID 1. It lies between the ids the node uses (root, tor's user,
// a distro's subuid ranges from 100000) and the containers' ranges
// (idmap.First up).
const InitUID = idmap.First - 1

func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

func memberOf(name string, gr []groupEntry) []uint32 {
	var gids []uint32
	for _, g := range gr {
		if slices.Contains(g.members, name) && !slices.Contains(gids, g.gid) {
			gids = append(gids, g.gid)
		}
	}
	return gids
}

// parsePasswd parses /etc/passwd: name:password:uid:gid:gecos:home:shell.
// Malformed lines are skipped, as libc does.
func parsePasswd(b []byte) []passwdEntry {
	var es []passwdEntry
	for _, f := range fields(b, 7) {
		uid, ok1 := parseID(f[2])
		gid, ok2 := parseID(f[3])
		if ok1 && ok2 && f[0] != "" {
			es = append(es, passwdEntry{name: f[0], uid: uid, gid: gid, home: f[5]})
		}
	}
	return es
}

// parseGroup parses /etc/group: name:password:gid:member,member.
func parseGroup(b []byte) []groupEntry {
	var es []groupEntry
	for _, f := range fields(b, 4) {
		gid, ok := parseID(f[2])
		if !ok || f[0] == "" {
			continue
		}
		var members []string
		if f[3] != "" {
			members = strings.Split(f[3], ",")
		}
		es = append(es, groupEntry{name: f[0], gid: gid, members: members})
	}
	return es
}

// fields splits the non-comment lines of b at colons, keeping those with
// exactly n fields.
func fields(b []byte, n int) [][]string {
	var out [][]string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if f := strings.Split(line, ":"); len(f) == n {
			out = append(out, f)
		}
	}
	return out
}

// maxImageFile bounds what PID 1 reads of an image's /etc/passwd.
const maxImageFile = 1 << 20

// readImageFile reads name inside root; a missing file reads as empty.
// It refuses anything but a regular file, so a FIFO cannot hang PID 1.
func readImageFile(root, name string) ([]byte, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	f, err := r.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("/%s: not a regular file", name)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxImageFile+1))
	if err == nil && len(b) > maxImageFile {
		err = fmt.Errorf("/%s: larger than %d bytes", name, maxImageFile)
	}
	return b, err
}
