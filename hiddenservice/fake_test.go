package hiddenservice

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
)

// fakeTor is a scripted tor control port on one end of a net.Pipe. It
// answers each command line with the reply of the first rule whose
// prefix matches, and records every command.
type fakeTor struct {
	t     testing.TB
	conn  net.Conn
	rules []rule

	mu   sync.Mutex
	cmds []string
	done chan struct{}
}

// rule answers commands starting with prefix with reply lines (CRLF
// added); a reply may also carry events (lines starting with 650).
type rule struct {
	prefix string
	reply  []string
}

// authRules are what bine's Authenticate needs when tor asks for no
// authentication.
var authRules = []rule{
	{"PROTOCOLINFO", []string{"250-PROTOCOLINFO 1", "250-AUTH METHODS=NULL", `250-VERSION Tor="0.4.9.11"`, "250 OK"}},
	{"AUTHENTICATE", []string{"250 OK"}},
}

// newFakeTor serves rules (after authRules) and returns the client end.
func newFakeTor(t testing.TB, rules ...rule) (*fakeTor, net.Conn) {
	client, server := net.Pipe()
	f := &fakeTor{t: t, conn: server, rules: append(append([]rule{}, authRules...), rules...), done: make(chan struct{})}
	go f.serve()
	t.Cleanup(func() {
		client.Close()
		server.Close()
		<-f.done
	})
	return f, client
}

func (f *fakeTor) serve() {
	defer close(f.done)
	r := bufio.NewReader(f.conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimRight(line, "\r\n")
		f.mu.Lock()
		f.cmds = append(f.cmds, cmd)
		f.mu.Unlock()
		if !f.answer(cmd) {
			return
		}
	}
}

func (f *fakeTor) answer(cmd string) bool {
	reply := []string{`510 Unrecognized command "` + cmd + `"`}
	for _, r := range f.rules {
		if strings.HasPrefix(cmd, r.prefix) {
			reply = r.reply
			break
		}
	}
	for _, l := range reply {
		if _, err := f.conn.Write([]byte(l + "\r\n")); err != nil {
			return false
		}
	}
	return true
}

// send writes lines (events) unprompted.
func (f *fakeTor) send(lines ...string) {
	for _, l := range lines {
		f.conn.Write([]byte(l + "\r\n"))
	}
}

// commands are the commands received, authentication excluded.
func (f *fakeTor) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.cmds {
		if !strings.HasPrefix(c, "PROTOCOLINFO") && !strings.HasPrefix(c, "AUTHENTICATE") {
			out = append(out, c)
		}
	}
	return out
}
