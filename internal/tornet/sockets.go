package tornet

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Socket is one inet socket of a process.
type Socket struct {
	PID           int
	Proto         string // tcp, tcp6, udp, udp6
	Local, Remote netip.AddrPort
	State         string // TCP state in hex as the kernel shows it ("0A" is LISTEN)
}

func (s Socket) String() string {
	return fmt.Sprintf("pid %d %s %s -> %s (state %s)", s.PID, s.Proto, s.Local, s.Remote, s.State)
}

// Loopback reports whether the socket stays on the loopback: bound to
// a loopback address, and connected to one or to nothing.
func (s Socket) Loopback() bool {
	r := s.Remote.Addr()
	return s.Local.Addr().IsLoopback() && (r.IsLoopback() || (r.IsUnspecified() && s.Remote.Port() == 0))
}

// Sockets lists the inet sockets pid holds: the inodes behind its
// /proc/PID/fd links, looked up in its network namespace's
// /proc/PID/net/{tcp,tcp6,udp,udp6}. (Those tables list every socket
// of the namespace, so the inodes are what ties them to the process.)
func Sockets(pid int) ([]Socket, error) {
	inodes, err := socketInodes(pid)
	if err != nil || len(inodes) == 0 {
		return nil, err
	}
	var out []Socket
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, proto))
		if err != nil {
			return nil, err
		}
		socks, err := parseNetTable(f, proto, inodes)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("tornet: /proc/%d/net/%s: %w", pid, proto, err)
		}
		for _, s := range socks {
			s.PID = pid
			out = append(out, s)
		}
	}
	return out, nil
}

func socketInodes(pid int) (map[string]bool, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if ino, ok := strings.CutPrefix(l, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	return inodes, nil
}

// parseNetTable reads a /proc/net/tcp-style table, keeping the rows
// whose inode is in inodes (all rows if inodes is nil).
func parseNetTable(r io.Reader, proto string, inodes map[string]bool) ([]Socket, error) {
	var out []Socket
	sc := bufio.NewScanner(r)
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || (inodes != nil && !inodes[f[9]]) {
			continue
		}
		local, err := parseHexAddr(f[1])
		if err != nil {
			return nil, err
		}
		remote, err := parseHexAddr(f[2])
		if err != nil {
			return nil, err
		}
		out = append(out, Socket{Proto: proto, Local: local, Remote: remote, State: f[3]})
	}
	return out, sc.Err()
}

// parseHexAddr parses the kernel's "0100007F:1F90": the address in
// 32-bit words of host byte order (little endian here), the port in
// big-endian hex.
func parseHexAddr(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	port, err := strconv.ParseUint(p, 16, 16)
	raw, err2 := hex.DecodeString(a)
	if !ok || err != nil || err2 != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(raw[i:], binary.LittleEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}

// Monitor polls the sockets of a set of processes and keeps every one
// that leaves the loopback.
type Monitor struct {
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	checked int
	bad     []Socket
}

// Watch starts polling the sockets of the processes pids returns,
// every interval, until Stop.
func Watch(interval time.Duration, pids func() []int) *Monitor {
	m := &Monitor{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			m.check(pids())
			select {
			case <-m.stop:
				return
			case <-t.C:
			}
		}
	}()
	return m
}

func (m *Monitor) check(pids []int) {
	for _, pid := range pids {
		socks, _ := Sockets(pid) // a process that just exited has none
		m.mu.Lock()
		for _, s := range socks {
			m.checked++
			if !s.Loopback() {
				m.bad = append(m.bad, s)
			}
		}
		m.mu.Unlock()
	}
}

// Stop ends the polling and returns how many socket observations were
// checked and those that were not on the loopback.
func (m *Monitor) Stop() (checked int, bad []Socket) {
	close(m.stop)
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.checked, m.bad
}

// ChildPIDs lists the processes named name (their comm) whose parent
// is this process: every tor a test started, by any means, without
// knowing how.
func ChildPIDs(name string) []int { return ChildrenOf(os.Getpid(), name) }

// ChildrenOf lists the processes named name whose parent is parent:
// the tor a node's PID 1 runs, say.
func ChildrenOf(parent int, name string) []int {
	var pids []int
	for pid, p := range processes() {
		if p.comm == name && p.ppid == parent {
			pids = append(pids, pid)
		}
	}
	return pids
}

// DescendantPIDs lists the processes named name whose ancestors include
// this process: also the tors of a PID 1 a test started, which are its
// grandchildren.
func DescendantPIDs(name string) []int {
	procs := processes()
	self := os.Getpid()
	var pids []int
	for pid, p := range procs {
		if p.comm != name {
			continue
		}
		for up, hops := p.ppid, 0; up > 1 && hops < 64; up, hops = procs[up].ppid, hops+1 {
			if up == self {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

type procInfo struct {
	comm string
	ppid int
}

// processes reads every process's comm and parent from /proc.
func processes() map[int]procInfo {
	ents, _ := os.ReadDir("/proc")
	procs := map[int]procInfo{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		comm, ppid := parseStat(string(b))
		procs[pid] = procInfo{comm, ppid}
	}
	return procs
}

// parseStat returns comm and ppid from /proc/PID/stat:
// "PID (COMM) STATE PPID ...", where COMM may hold spaces and parens.
func parseStat(s string) (comm string, ppid int) {
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", 0
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 2 {
		return "", 0
	}
	ppid, _ = strconv.Atoi(f[1])
	return s[open+1 : end], ppid
}
