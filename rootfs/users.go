package rootfs

import (
	"fmt"
	"strings"
)

// User is an account of the appliance, with a group of the same name
// and number. The appliance has no shells and no logins: the accounts
// exist so that programs that switch user (tor's User option) find
// their uid in /etc/passwd.
type User struct {
	Name string
	ID   int    // uid and gid
	Home string // "" means "/"
}

// Users are the accounts mkimage writes into the initramfs's /etc/passwd
// and /etc/group.
var Users = []User{
	{Name: "root", ID: 0, Home: "/root"},
	{Name: TorUser, ID: TorUID, Home: TorDataDir},
}

// Passwd renders users as /etc/passwd lines: no password, shell
// /bin/false (the appliance has none).
func Passwd(users []User) []byte {
	var b strings.Builder
	for _, u := range users {
		gecos := ""
		if u.ID == 0 {
			gecos = u.Name
		}
		fmt.Fprintf(&b, "%s:x:%d:%d:%s:%s:/bin/false\n", u.Name, u.ID, u.ID, gecos, or(u.Home, "/"))
	}
	return []byte(b.String())
}

// Group renders users' groups as /etc/group lines, one group per user
// and no members.
func Group(users []User) []byte {
	var b strings.Builder
	for _, u := range users {
		fmt.Fprintf(&b, "%s:x:%d:\n", u.Name, u.ID)
	}
	return []byte(b.String())
}

// The account files mkimage writes from Users.
const (
	PasswdFile = "/etc/passwd"
	GroupFile  = "/etc/group"
)
