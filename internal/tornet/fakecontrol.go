package tornet

import (
	"bufio"
	"net"
	"strings"
	"sync"
)

// FakeControl is a tor control port for unit tests: every connection
// is answered by the same rules (the reply lines to one command line,
// without CRLF) and every command is recorded.
type FakeControl struct {
	rules func(cmd string) []string

	mu   sync.Mutex
	cmds []string
}

// NewFakeControl makes a fake control port that answers by rules.
func NewFakeControl(rules func(cmd string) []string) *FakeControl {
	return &FakeControl{rules: rules}
}

// Serve accepts connections on ln, each on its own goroutine, until ln
// is closed. It returns at once.
func (f *FakeControl) Serve(ln net.Listener) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
}

func (f *FakeControl) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimRight(line, "\r\n")
		f.mu.Lock()
		f.cmds = append(f.cmds, cmd)
		f.mu.Unlock()
		for _, l := range f.rules(cmd) {
			c.Write([]byte(l + "\r\n"))
		}
	}
}

// Commands returns the commands received so far that start with
// prefix ("" for all), in order.
func (f *FakeControl) Commands(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.cmds {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}
