package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"allium/api"
	"allium/hiddenservice"
	"allium/internal/tornet"
)

// testOnion is a valid onion address of a fresh key.
func testOnion(t *testing.T) string {
	t.Helper()
	k, err := hiddenservice.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return hiddenservice.KeyAddress(k)
}

func TestResolveOnions(t *testing.T) {
	onion := testOnion(t)
	key := otherKey(t)
	cfg := api.Config{Dir: t.TempDir()}
	for _, a := range []api.Alias{
		{Name: "tcp", Address: "192.0.2.1:7707"},
		{Name: "both", Address: "192.0.2.2:7707", Onion: onion + ":7707"},
		{Name: "onion", Onion: onion + ":8000"},
		{Name: "addr-onion", Address: onion + ":7707"},
	} {
		a.NodeKey = api.FormatKey(key)
		if err := cfg.SaveAlias(a); err != nil {
			t.Fatal(err)
		}
	}
	flagKey := api.FormatKey(key)
	upper := strings.ToUpper(strings.TrimSuffix(onion, ".onion")) + ".onion"
	tests := []struct {
		host, nodeKey, via string
		addr               string // "" when an error containing err is wanted
		onion              bool
		err                string
	}{
		{"tcp", "", viaAuto, "192.0.2.1:7707", false, ""},
		{"tcp", "", viaTCP, "192.0.2.1:7707", false, ""},
		{"tcp", "", viaOnion, "", false, "tcp has no onion"},
		{"both", "", viaAuto, "192.0.2.2:7707", false, ""},
		{"both", "", viaTCP, "192.0.2.2:7707", false, ""},
		{"both", "", viaOnion, onion + ":7707", true, ""},
		{"onion", "", viaAuto, onion + ":8000", true, ""},
		{"onion", "", viaOnion, onion + ":8000", true, ""},
		{"onion", "", viaTCP, "", false, "onion has no TCP address"},
		{"addr-onion", "", viaAuto, onion + ":7707", true, ""},
		{"addr-onion", "", viaOnion, onion + ":7707", true, ""},
		{"addr-onion", "", viaTCP, "", false, "has no TCP address"},
		{onion, flagKey, viaAuto, onion + ":7707", true, ""},
		{onion + ":9000", flagKey, viaAuto, onion + ":9000", true, ""},
		{upper, flagKey, viaOnion, onion + ":7707", true, ""},
		{onion, "", viaAuto, "", false, "is an onion address, so cloud needs the key"},
		{onion, flagKey, viaTCP, "", false, "cannot be reached with --via tcp"},
		{"192.0.2.9:7707", flagKey, viaOnion, "", false, "is not an onion address"},
		{"abcdef.onion", flagKey, viaAuto, "", false, "not a v3 onion address"},
		{onion + ":0", flagKey, viaAuto, "", false, `port "0"`},
	}
	for _, tt := range tests {
		got, err := resolve(cfg, tt.host, tt.nodeKey, tt.via)
		name := fmt.Sprintf("resolve(%q, --via %s)", tt.host, tt.via)
		if tt.addr == "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s = %+v, %v, want an error containing %q", name, got, err, tt.err)
			}
			continue
		}
		if err != nil || got.addr != tt.addr || got.onion != tt.onion {
			t.Errorf("%s = addr %q onion %v, %v, want %q, %v", name, got.addr, got.onion, err, tt.addr, tt.onion)
		}
	}
}

func TestTorFlagsChecked(t *testing.T) {
	f := newFleet(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--via", "carrier-pigeon", "info", "web1"}, `--via "carrier-pigeon": want auto, tcp or onion`},
		{[]string{"--torrc", "x", "--tor-socks", "127.0.0.1:9050", "info", "web1"}, "--torrc configures the tor cloud starts itself"},
		{[]string{"--tor-socks", "9050", "info", "web1"}, `--tor-socks "9050": want HOST:PORT`},
	}
	for _, tt := range tests {
		code, _, errOut := f.cloud(t, tt.args...)
		if code != exitUsage {
			t.Errorf("cloud %s: exit %d, want %d", strings.Join(tt.args, " "), code, exitUsage)
		}
		wantContains(t, "stderr of cloud "+strings.Join(tt.args, " "), errOut, tt.want)
	}
}

func TestTorFlagDefaults(t *testing.T) {
	root := newRoot(io.Discard, io.Discard)
	want := map[string]string{"via": "auto", "tor-socks": "", "tor-control": "", "torrc": "", "timeout": "30s"}
	for name, def := range want {
		f := root.PersistentFlags().Lookup(name)
		if f == nil || f.DefValue != def {
			t.Errorf("flag --%s = %+v, want default %q", name, f, def)
		}
	}
	if torDefaults.socks != "127.0.0.1:9050" || strings.Join(torDefaults.controls, " ") != "127.0.0.1:9051 /run/tor/control" {
		t.Errorf("torDefaults = %+v, want 127.0.0.1:9050 and 127.0.0.1:9051 or /run/tor/control", torDefaults)
	}
}

// onionFleet is a fleet whose node is reached as an onion through a
// fake tor: a SOCKS server that answers as told and a control port that
// records the commands it gets.
type onionFleet struct {
	*fleet
	onion string
	socks *fakeSOCKS
	ctl   *fakeControl
}

func newOnionFleet(t *testing.T) *onionFleet {
	t.Helper()
	f := &onionFleet{fleet: newFleet(t), onion: testOnion(t)}
	a := api.Alias{Name: "hidden", Onion: f.onion + ":7707", NodeKey: api.FormatKey(f.nodeKey)}
	if err := (api.Config{Dir: f.dir}).SaveAlias(a); err != nil {
		t.Fatal(err)
	}
	f.socks = newFakeSOCKS(t, f.addr)
	f.ctl = newFakeControl(t)
	saved, attempt, pause := torDefaults, onionAttempt, onionPause
	torDefaults.socks, torDefaults.controls = f.socks.addr, []string{f.ctl.addr}
	onionAttempt, onionPause = 300*time.Millisecond, 10*time.Millisecond
	t.Cleanup(func() { torDefaults, onionAttempt, onionPause = saved, attempt, pause })
	return f
}

func TestOnionThroughRunningTor(t *testing.T) {
	f := newOnionFleet(t)
	code, out, errOut := f.cloud(t, "info", "hidden")
	if code != exitOK {
		t.Fatalf("cloud info hidden: exit %d, want 0: %s", code, errOut)
	}
	wantContains(t, "cloud info hidden", out, "v0.1.0-test")
	if got := f.socks.targets(); len(got) != 1 || got[0] != f.onion+":7707" {
		t.Errorf("SOCKS CONNECTs = %q, want one to %s:7707", got, f.onion)
	}
	key, err := hiddenservice.ReadClientKeyFile(filepath.Join(f.dir, "client.onion"))
	if err != nil {
		t.Fatalf("the client's x25519 key was not made: %v", err)
	}
	wantContains(t, "stderr", errOut, "made this client's x25519 key", hiddenservice.FormatClientPublicKey(key.PublicKey()))
	add, _ := hiddenservice.ClientAuthAddCommand(f.onion, key, hiddenservice.ClientAuthOptions{Name: "allium-cloud"})
	if got := f.ctl.commands(); len(got) != 1 || got[0] != add {
		t.Errorf("control commands = %q, want only %q (not Flags=Permanent)", got, add)
	}

	// The second run uses the same key, and does not say it made one.
	code, _, errOut = f.cloud(t, "info", "hidden")
	if code != exitOK || strings.Contains(errOut, "made this client's") {
		t.Errorf("second cloud info: exit %d, stderr %q; want 0 and the key kept", code, errOut)
	}
	if again, _ := hiddenservice.ReadClientKeyFile(filepath.Join(f.dir, "client.onion")); !again.Equal(key) {
		t.Errorf("the client's x25519 key changed between runs")
	}
}

// A stalled connection attempt (tor attaching streams to a dead
// rendezvous circuit) must lead to NEWNYM, the key added again (NEWNYM
// drops it), and a retry that succeeds.
func TestOnionStallRenewsCircuits(t *testing.T) {
	f := newOnionFleet(t)
	f.socks.script = []byte{hang}
	code, out, errOut := f.cloud(t, "info", "hidden")
	if code != exitOK {
		t.Fatalf("cloud info hidden: exit %d, want 0", code)
	}
	wantContains(t, "cloud info", out, "v0.1.0-test")
	wantContains(t, "stderr", errOut, "no connection to "+f.onion+":7707 within 300ms; asking tor for new circuits and trying again (1 of 2)")
	got := f.ctl.verbs()
	want := "ONION_CLIENT_AUTH_ADD SIGNAL ONION_CLIENT_AUTH_ADD"
	if strings.Join(got, " ") != want {
		t.Errorf("control commands = %q, want %s", got, want)
	}
}

func TestOnionSOCKSErrorsExplained(t *testing.T) {
	tests := []struct {
		code  byte
		wants []string
	}{
		{0xF0, []string{"tor found no descriptor", "not published the onion yet"}},
		{0xF1, []string{"descriptor is invalid"}},
		{0xF2, []string{"introduction failed", "try again in a minute"}},
		{0xF3, []string{"rendezvous failed"}},
		{0xF4, []string{"the onion's descriptor cannot be decrypted", "client.onion) is not authorized on hidden", "`cloud keys hidden add ...`", "x25519 "}},
		{0xF5, []string{"cannot be decrypted with this client's key", "client.onion) is not authorized on hidden", "`cloud keys hidden add ...`"}},
		{0xF6, []string{"onion address is invalid", "cloud nodes"}},
		{0xF7, []string{"introduction timed out"}},
		{0x01, []string{"0x01 (general failure)", "lacks the ExtendedErrors flag"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("0x%02X", tt.code), func(t *testing.T) {
			f := newOnionFleet(t)
			f.socks.script = []byte{tt.code, tt.code, tt.code}
			code, _, errOut := f.cloud(t, "info", "hidden")
			if code != exitFailure {
				t.Errorf("exit %d, want %d", code, exitFailure)
			}
			wantContains(t, "stderr", errOut, append(tt.wants, "cannot reach hidden ("+f.onion+":7707) through tor")...)
			tries := 1
			if (&hiddenservice.SOCKSError{Code: tt.code}).Transient() {
				tries = 1 + onionRetries
			}
			if n := len(f.socks.targets()); n != tries {
				t.Errorf("%d CONNECTs, want %d", n, tries)
			}
		})
	}
}

func TestOnionKeyNotGivenExplained(t *testing.T) {
	f := newOnionFleet(t)
	torDefaults.controls = []string{closedPort(t)}
	f.socks.script = []byte{0xF4}
	code, _, errOut := f.cloud(t, "info", "hidden")
	if code != exitFailure {
		t.Errorf("exit %d, want %d", code, exitFailure)
	}
	wantContains(t, "stderr", errOut, "no tor control port at", "cloud could not hand tor this client's x25519 key", "--tor-control ADDR")
}

func TestNoTorExplained(t *testing.T) {
	f := newOnionFleet(t)
	code, _, errOut := f.cloud(t, "info", "hidden", "--tor-socks", closedPort(t))
	if code != exitFailure {
		t.Errorf("exit %d, want %d", code, exitFailure)
	}
	wantContains(t, "stderr with a dead --tor-socks", errOut, "tor's SOCKS port", "connection refused", "apt install tor")

	torDefaults.socks = closedPort(t)
	torDefaults.exes = []string{filepath.Join(t.TempDir(), "no-tor-here")}
	code, _, errOut = f.cloud(t, "info", "hidden")
	if code != exitFailure {
		t.Errorf("exit %d, want %d", code, exitFailure)
	}
	wantContains(t, "stderr with no tor at all", errOut, "no tor to reach the onion", "apt install tor", "--tor-socks HOST:PORT")

	code, _, errOut = f.cloud(t, "info", "hidden", "--torrc", filepath.Join(t.TempDir(), "missing"))
	if code != exitUsage {
		t.Errorf("a missing --torrc file: exit %d, want %d", code, exitUsage)
	}
	wantContains(t, "stderr with a missing --torrc", errOut, "--torrc: open", "no such file")
}

func TestOwnTorrc(t *testing.T) {
	rc := ownTorrc("/c/tor", "/c/tor/onion_auth", "UseBridges 1\nBridge 192.0.2.1:443")
	for _, want := range []string{
		"SocksPort 127.0.0.1:auto ExtendedErrors\n", "ClientOnionAuthDir /c/tor/onion_auth\n",
		"GeoIPFile \"\"\n", "GeoIPv6File \"\"\n", fmt.Sprintf("__OwningControllerProcess %d\n", os.Getpid()),
		"# from --torrc\nUseBridges 1\nBridge 192.0.2.1:443\n",
	} {
		if !strings.Contains(rc, want) {
			t.Errorf("ownTorrc() = %q, want it to contain %q", rc, want)
		}
	}
}

// Script entries for fakeSOCKS: a reply code, or one of these.
const (
	proxy byte = 0x00 // reply success and relay to the node
	hang  byte = 0xFF // never reply
)

// fakeSOCKS is a SOCKS5 server on 127.0.0.1 that answers CONNECTs as
// its script says, one entry each, and relays to node once the script
// is done.
type fakeSOCKS struct {
	addr   string
	node   string
	script []byte

	mu   sync.Mutex
	seen []string
}

func newFakeSOCKS(t *testing.T, node string) *fakeSOCKS {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &fakeSOCKS{addr: ln.Addr().String(), node: node}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(t, c)
		}
	}()
	return s
}

func (s *fakeSOCKS) targets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

func (s *fakeSOCKS) serve(t *testing.T, c net.Conn) {
	defer c.Close()
	var b [262]byte
	if _, err := io.ReadFull(c, b[:3]); err != nil {
		return // a probe that only checked the port
	}
	c.Write([]byte{5, 0})
	if _, err := io.ReadFull(c, b[:5]); err != nil || b[3] != 3 {
		return
	}
	n := int(b[4])
	if _, err := io.ReadFull(c, b[:n+2]); err != nil {
		return
	}
	target := fmt.Sprintf("%s:%d", b[:n], binary.BigEndian.Uint16(b[n:n+2]))
	s.mu.Lock()
	step := proxy
	if i := len(s.seen); i < len(s.script) {
		step = s.script[i]
	}
	s.seen = append(s.seen, target)
	s.mu.Unlock()
	switch step {
	case hang:
		io.Copy(io.Discard, c) // until the client gives up
		return
	case proxy:
	default:
		c.Write([]byte{5, step, 0, 1, 0, 0, 0, 0, 0, 0})
		return
	}
	node, err := net.Dial("tcp", s.node)
	if err != nil {
		t.Errorf("fake SOCKS: %v", err)
		return
	}
	defer node.Close()
	c.Write([]byte{5, 0, 0, 1, 127, 0, 0, 1, 0, 0})
	go io.Copy(node, c)
	io.Copy(c, node)
}

// fakeControl is a tor control port that wants no authentication,
// answers 250 to everything and records the commands.
type fakeControl struct {
	*tornet.FakeControl
	addr string
}

func newFakeControl(t *testing.T) *fakeControl {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f := &fakeControl{FakeControl: tornet.NewFakeControl(func(cmd string) []string {
		if cmd == "PROTOCOLINFO" {
			return []string{"250-PROTOCOLINFO 1", "250-AUTH METHODS=NULL", `250-VERSION Tor="0.4.9.11"`, "250 OK"}
		}
		return []string{"250 OK"}
	}), addr: ln.Addr().String()}
	f.Serve(ln)
	return f
}

// commands are the commands after authentication.
func (f *fakeControl) commands() []string {
	var out []string
	for _, c := range f.Commands("") {
		if c != "PROTOCOLINFO" && !strings.HasPrefix(c, "AUTHENTICATE") {
			out = append(out, c)
		}
	}
	return out
}

// verbs are the commands' first words.
func (f *fakeControl) verbs() []string {
	var v []string
	for _, c := range f.commands() {
		w, _, _ := strings.Cut(c, " ")
		v = append(v, w)
	}
	return v
}

// tor puts off a NEWNYM sent within 10 s of the last one, and carrying
// it out drops the key added since: a 0xF4 after NEWNYM must lead to
// the key handed over again, not to a refusal.
func TestOnionKeyAddedAgainAfterLateNewnym(t *testing.T) {
	f := newOnionFleet(t)
	f.socks.script = []byte{hang, 0xF4}
	code, _, errOut := f.cloud(t, "info", "hidden")
	if code != exitOK {
		t.Fatalf("cloud info hidden: exit %d, want 0", code)
	}
	wantContains(t, "stderr", errOut, "lost this client's key after new circuits; handing it over again (2 of 2)")
	want := "ONION_CLIENT_AUTH_ADD SIGNAL ONION_CLIENT_AUTH_ADD ONION_CLIENT_AUTH_ADD"
	if got := f.ctl.verbs(); strings.Join(got, " ") != want {
		t.Errorf("control commands = %q, want %s", got, want)
	}
}

func TestDroppedConn(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{io.EOF, true},
		{fmt.Errorf("Get \"https://x.onion:7707/v1/node\": %w", io.EOF), true},
		{&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, true},
		{io.ErrUnexpectedEOF, true},
		{&api.Error{Message: "no", Code: api.CodeUnauthorized, Status: 401}, false},
		{context.DeadlineExceeded, false},
		{errors.New("tls: bad certificate"), false},
	} {
		if got := droppedConn(tc.err); got != tc.want {
			t.Errorf("droppedConn(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestBootstrapStuckSaysWhere(t *testing.T) {
	err := bootstrapStuck(hiddenservice.Bootstrap{Progress: 14, Summary: "Handshaking with a relay", Warning: "DONE", Reason: "DONE"}, 20*time.Second)
	wantContains(t, "bootstrapStuck", err.Error(), "within 20s", "at 14% (handshaking with a relay)", "--torrc")
	if strings.Contains(err.Error(), "DONE") {
		t.Errorf("bootstrapStuck passed tor's uninformative DONE warning on: %v", err)
	}
	err = bootstrapStuck(hiddenservice.Bootstrap{Progress: 5, Summary: "Connecting", Warning: "Connection refused", Reason: "CONNECTREFUSED"}, time.Minute)
	wantContains(t, "bootstrapStuck", err.Error(), "warns: Connection refused (CONNECTREFUSED)")
}
