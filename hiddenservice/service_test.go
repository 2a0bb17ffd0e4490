package hiddenservice

import (
	"context"
	"crypto/ecdh"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cretz/bine/control"
)

func testOnion(t *testing.T) Onion {
	return Onion{Key: rfc8032Key(t), Clients: []*ecdh.PublicKey{rfc7748Key(t).PublicKey()}, Target: "127.0.0.1:7707"}
}

func TestAddOnionCommand(t *testing.T) {
	o := testOnion(t)
	got, err := AddOnionCommand(o)
	want := "ADD_ONION " + KeyBlob(o.Key) + " Flags=Detach,V3Auth Port=80,127.0.0.1:7707 ClientAuthV3=QUQPACMJGCTVI5ELPXOLIPXXLIG36OQNEY4BV5HLUSUY5KU3JZVA"
	if err != nil || got != want {
		t.Errorf("AddOnionCommand = %q, %v\nwant %q", got, err, want)
	}
	two, _ := NewClientKey()
	o.Clients = append(o.Clients, two.PublicKey())
	o.Port = 7707
	got, _ = AddOnionCommand(o)
	if !strings.Contains(got, " Port=7707,127.0.0.1:7707 ClientAuthV3=QUQP") || !strings.HasSuffix(got, " ClientAuthV3="+FormatClientPublicKey(two.PublicKey())) {
		t.Errorf("AddOnionCommand(two clients, port 7707) = %q", got)
	}
	o.MaxStreams = 32
	got, _ = AddOnionCommand(o)
	if !strings.Contains(got, " Flags=Detach,V3Auth,MaxStreamsCloseCircuit MaxStreams=32 Port=7707,") {
		t.Errorf("AddOnionCommand(max streams 32) = %q, want the flag and MaxStreams=32 before Port", got)
	}
}

func TestAddOnionCommandRejects(t *testing.T) {
	for name, mod := range map[string]func(*Onion){
		"no clients":       func(o *Onion) { o.Clients = nil },
		"no key":           func(o *Onion) { o.Key = nil },
		"target hostname":  func(o *Onion) { o.Target = "localhost:80" },
		"target no port":   func(o *Onion) { o.Target = "127.0.0.1" },
		"target injection": func(o *Onion) { o.Target = "127.0.0.1:80 Flags=NonAnonymous" },
		"port too big":     func(o *Onion) { o.Port = 70000 },
		"max streams < 0":  func(o *Onion) { o.MaxStreams = -1 },
	} {
		o := testOnion(t)
		mod(&o)
		if _, err := AddOnionCommand(o); err == nil {
			t.Errorf("%s: AddOnionCommand succeeded", name)
		}
	}
	o := testOnion(t)
	o.Clients = nil
	if _, err := AddOnionCommand(o); !errors.Is(err, ErrNoClients) {
		t.Errorf("AddOnionCommand(no clients) = %v, want ErrNoClients", err)
	}
}

func publishRules(id string, events ...string) []rule {
	return []rule{
		{"SETEVENTS", []string{"250 OK"}},
		{"DEL_ONION", []string{"552 Unknown Onion Service id"}},
		{"GETINFO circuit-status", []string{"250+circuit-status=", ".", "250 OK"}},
		{"ADD_ONION", append([]string{"250-ServiceID=" + id, "250-ClientAuthV3=QUQP", "250 OK"}, events...)},
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPublish(t *testing.T) {
	o := testOnion(t)
	id := ID(KeyAddress(o.Key))
	fake, conn := newFakeTor(t, publishRules(id,
		"650 HS_DESC UPLOAD "+id+" UNKNOWN $AAAA DESCID HSDIR_INDEX=1234",
		"650 HS_DESC UPLOAD someoneelse UNKNOWN $AAAA DESCID",
		"650 HS_DESC UPLOADED someoneelse UNKNOWN $AAAA",
		"650 HS_DESC UPLOADED "+id+" UNKNOWN $AAAA",
	)...)
	ctl, err := NewController(ctxT(t), conn)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := NewService(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Publish(ctxT(t), ctl); err != nil {
		t.Fatalf("Publish = %v", err)
	}
	add, _ := AddOnionCommand(o)
	want := []string{"SETEVENTS HS_DESC", "DEL_ONION " + id, "GETINFO circuit-status", add}
	if got := fake.commands(); !slices.Equal(got, want) {
		t.Errorf("commands = %q\nwant %q", got, want)
	}
}

// A descriptor that never uploads times out, and the controller stays
// usable: the wait consumed nothing it should not have.
func TestPublishUploadTimeout(t *testing.T) {
	o := testOnion(t)
	id := ID(KeyAddress(o.Key))
	rules := append(publishRules(id, "650 HS_DESC UPLOAD "+id+" UNKNOWN $AAAA DESCID"),
		rule{"GETINFO status/bootstrap-phase", []string{`250-status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`, "250 OK"}})
	_, conn := newFakeTor(t, rules...)
	ctl, err := NewController(ctxT(t), conn)
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := NewService(o)
	svc.UploadTimeout = 100 * time.Millisecond
	if err := svc.Publish(ctxT(t), ctl); !errors.Is(err, ErrUploadTimeout) {
		t.Fatalf("Publish = %v, want ErrUploadTimeout", err)
	}
	b, err := ctl.Bootstrap(ctxT(t))
	if err != nil || b.Progress != 100 {
		t.Errorf("Bootstrap after the timeout = %+v, %v, want 100%%", b, err)
	}
}

func TestPublishRefused(t *testing.T) {
	o := testOnion(t)
	_, conn := newFakeTor(t,
		rule{"SETEVENTS", []string{"250 OK"}},
		rule{"DEL_ONION", []string{"552 Unknown Onion Service id"}},
		rule{"GETINFO circuit-status", []string{"250-circuit-status=", "250 OK"}},
		rule{"ADD_ONION", []string{`512 Bad arguments to ADD_ONION: Unrecognized flag "V3Auth"`}},
	)
	ctl, _ := NewController(ctxT(t), conn)
	svc, _ := NewService(o)
	err := svc.Publish(ctxT(t), ctl)
	if !IsTorError(err, 512) || !strings.Contains(err.Error(), "ADD_ONION") || strings.Contains(err.Error(), "ED25519-V3:") {
		t.Errorf("Publish = %v, want tor's 512 naming ADD_ONION, without the key", err)
	}
}

// Update replaces the onion: DEL_ONION of the published one, then
// ADD_ONION with the new clients only.
func TestUpdate(t *testing.T) {
	o := testOnion(t)
	id := ID(KeyAddress(o.Key))
	rules := publishRules(id, "650 HS_DESC UPLOADED "+id+" UNKNOWN $AAAA")
	rules[1] = rule{"DEL_ONION", []string{"250 OK"}}
	rules[2] = rule{"GETINFO circuit-status", []string{"250+circuit-status=",
		"5 BUILT $AA~r1,$BB~r2 BUILD_FLAGS=IS_INTERNAL PURPOSE=HS_SERVICE_REND HS_STATE=HSSR_JOINED REND_QUERY=" + id,
		"6 BUILT $AA~r1 BUILD_FLAGS=IS_INTERNAL,NEED_CAPACITY PURPOSE=GENERAL",
		"7 BUILT $AA~r1,$BB~r2 BUILD_FLAGS=IS_INTERNAL PURPOSE=HS_SERVICE_REND HS_STATE=HSSR_JOINED REND_QUERY=" + id,
		".", "250 OK"}}
	rules = append(rules, rule{"CLOSECIRCUIT 5", []string{"250 OK"}}, rule{"CLOSECIRCUIT 7", []string{"552 Unknown circuit \"7\""}})
	fake, conn := newFakeTor(t, rules...)
	ctl, _ := NewController(ctxT(t), conn)
	svc, _ := NewService(o)
	other, _ := NewClientKey()
	if err := svc.Update(ctxT(t), ctl, []*ecdh.PublicKey{other.PublicKey()}); err != nil {
		t.Fatal(err)
	}
	cmds := fake.commands()
	if len(cmds) != 6 || cmds[1] != "DEL_ONION "+id || cmds[3] != "CLOSECIRCUIT 5" || cmds[4] != "CLOSECIRCUIT 7" ||
		!strings.HasSuffix(cmds[5], " ClientAuthV3="+FormatClientPublicKey(other.PublicKey())) || strings.Contains(cmds[5], "QUQP") {
		t.Errorf("commands = %q, want DEL_ONION, the rendezvous circuits closed, then ADD_ONION with only the new key", cmds)
	}
	if err := svc.Update(ctxT(t), ctl, nil); !errors.Is(err, ErrNoClients) {
		t.Errorf("Update(no clients) = %v, want ErrNoClients", err)
	}
}

// tor answers ONION_CLIENT_AUTH_ADD with 251 or 252 on success; bine
// alone calls those errors.
func TestAddClientAuth(t *testing.T) {
	for code, ok := range map[string]bool{
		"250 OK": true, "251 Client for onion existed and replaced": true,
		"252 Registered client and decrypted desc": true, "512 Invalid v3 address": false,
	} {
		fake, conn := newFakeTor(t, rule{"ONION_CLIENT_AUTH_ADD", []string{code}})
		ctl, _ := NewController(ctxT(t), conn)
		err := ctl.AddClientAuth(ctxT(t), rfc8032ID+".onion", rfc7748Key(t), ClientAuthOptions{Name: "ci"})
		if (err == nil) != ok {
			t.Errorf("AddClientAuth with reply %q = %v, want success %v", code, err, ok)
		}
		if cmds := fake.commands(); len(cmds) != 1 || !strings.HasPrefix(cmds[0], "ONION_CLIENT_AUTH_ADD "+rfc8032ID+" x25519:") {
			t.Errorf("commands = %q", cmds)
		}
	}
}

// NextEvent returns events in order, calls the Observer, and a context
// that ends while nothing arrives leaves the connection usable.
func TestNextEvent(t *testing.T) {
	fake, conn := newFakeTor(t, rule{"GETINFO version", []string{"250-version=0.4.9.11", "250 OK"}})
	ctl, _ := NewController(ctxT(t), conn)
	var seen int
	ctl.Observer = func(control.Event) { seen++ }
	go fake.send(
		`650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=75 TAG=enough_dirinfo SUMMARY="Loaded enough directory info to build circuits"`,
		"650 STATUS_GENERAL WARN CLOCK_SKEW SKEW=-7200 SOURCE=CONSENSUS",
	)
	for _, want := range []string{"STATUS_CLIENT", "STATUS_GENERAL"} {
		ev, err := ctl.NextEvent(ctxT(t))
		if err != nil || string(ev.Code()) != want {
			t.Fatalf("NextEvent = %v, %v, want %s", ev, err, want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := ctl.NextEvent(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("NextEvent with nothing to read = %v, want DeadlineExceeded", err)
	}
	if v, err := ctl.GetInfo(ctxT(t), "version"); err != nil || v != "0.4.9.11" {
		t.Errorf("GetInfo after an idle NextEvent = %q, %v", v, err)
	}
	if seen != 2 {
		t.Errorf("Observer saw %d events, want 2", seen)
	}
}

// A request cut short by its context breaks the controller for good:
// half a reply may be left in the buffer.
func TestRequestCancelBreaks(t *testing.T) {
	_, conn := newFakeTor(t, rule{"GETINFO slow", nil}) // never answers
	ctl, _ := NewController(ctxT(t), conn)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := ctl.GetInfo(ctx, "slow"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GetInfo(slow) = %v, want DeadlineExceeded", err)
	}
	if _, err := ctl.GetInfo(ctxT(t), "version"); err == nil || !strings.Contains(err.Error(), "unusable") {
		t.Errorf("GetInfo after a cut request = %v, want an unusable-connection error", err)
	}
	if _, err := ctl.Request(ctxT(t), "SIGNAL NEWNYM\r\nSIGNAL HALT"); err == nil {
		t.Error("Request with a line break succeeded")
	}
}

func TestRendezvousCircuits(t *testing.T) {
	const status = `3 BUILT $A~a,$B~b,$C~c BUILD_FLAGS=IS_INTERNAL,NEED_CAPACITY,NEED_UPTIME PURPOSE=HS_SERVICE_INTRO HS_STATE=HSSI_ESTABLISHED REND_QUERY=` + rfc8032ID + `
9 BUILT $A~a,$B~b,$C~c,$D~d BUILD_FLAGS=IS_INTERNAL,NEED_CAPACITY PURPOSE=HS_SERVICE_REND HS_STATE=HSSR_JOINED REND_QUERY=` + rfc8032ID + ` TIME_CREATED=2026-01-01T00:00:00.000000
10 BUILT $A~a,$B~b BUILD_FLAGS=IS_INTERNAL PURPOSE=HS_SERVICE_REND HS_STATE=HSSR_JOINED REND_QUERY=someotheronion
11 EXTENDED $A~a PURPOSE=HS_SERVICE_REND HS_STATE=HSSR_CONNECTING REND_QUERY=` + rfc8032ID
	got := RendezvousCircuits(status, rfc8032ID+".onion")
	if !slices.Equal(got, []string{"9", "11"}) {
		t.Errorf("RendezvousCircuits = %q, want [9 11]", got)
	}
	if got := RendezvousCircuits("", rfc8032ID); got != nil {
		t.Errorf("RendezvousCircuits(empty) = %q", got)
	}
}
