package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"sync"

	"allium/api"
)

// fakeInits is a node's updater, in memory: it keeps partial uploads
// of inits, checks their digest, and stages what its check allows.
type fakeInits struct {
	initMu   sync.Mutex
	parts    map[string][]byte
	staged   *api.InitInfo
	initPuts []int64 // the offset of each PutInit
	// refuse, when set, refuses every complete init with it, as the
	// node's check would.
	refuse string
	// dropInitAt, when > 0, makes the next PutInit keep the body up to
	// that offset and then fail as a dropped connection does.
	dropInitAt int64
	// switched is the digest SwitchInit switched to; noSwitch, when
	// set, is why SwitchInit refuses.
	switched, noSwitch string
}

func (f *fakeInits) SwitchInit(_ context.Context, d string) (string, error) {
	f.initMu.Lock()
	defer f.initMu.Unlock()
	switch {
	case f.noSwitch != "":
		return "", api.Conflict("%s", f.noSwitch)
	case f.staged == nil || f.staged.Digest != d:
		return "", api.Conflict("init %s is not staged on this node", d)
	}
	f.switched = d
	return "switching to init " + f.staged.Version, nil
}

// runningVersion is the staged init's version once switched to it.
func (f *fakeInits) runningVersion() string {
	f.initMu.Lock()
	defer f.initMu.Unlock()
	if f.switched == "" || f.staged == nil {
		return ""
	}
	return f.staged.Version
}

func (f *fakeInits) Init(_ context.Context, d string) (api.InitInfo, error) {
	f.initMu.Lock()
	defer f.initMu.Unlock()
	if f.staged == nil || f.staged.Digest != d {
		return api.InitInfo{}, api.NotFound("init %s is not staged on this node", d)
	}
	return *f.staged, nil
}

func (f *fakeInits) InitOffset(_ context.Context, d string) (int64, error) {
	f.initMu.Lock()
	defer f.initMu.Unlock()
	return int64(len(f.parts[d])), nil
}

func (f *fakeInits) PutInit(_ context.Context, d string, offset, total int64, body io.Reader) (api.InitInfo, error) {
	f.initMu.Lock()
	defer f.initMu.Unlock()
	f.initPuts = append(f.initPuts, offset)
	if f.parts == nil {
		f.parts = map[string][]byte{}
	}
	if have := int64(len(f.parts[d])); have != offset {
		return api.InitInfo{}, api.OffsetMismatch(d, have)
	}
	if f.dropInitAt > offset {
		b, _ := io.ReadAll(io.LimitReader(body, f.dropInitAt-offset))
		f.parts[d] = append(f.parts[d], b...)
		f.dropInitAt = 0
		return api.InitInfo{}, api.Unavailable("the connection dropped")
	}
	b, err := io.ReadAll(body)
	f.parts[d] = append(f.parts[d], b...)
	if err != nil {
		return api.InitInfo{}, err
	}
	all := f.parts[d]
	delete(f.parts, d)
	switch {
	case digestOf(all) != d:
		return api.InitInfo{}, api.BadRequest("init %s: the file sent has the digest %s; nothing was kept", d, digestOf(all))
	case f.refuse != "":
		return api.InitInfo{}, api.BadRequest("init %s refused: %s; nothing changed", d, f.refuse)
	}
	f.staged = &api.InitInfo{Digest: d, Size: total, InitVersion: api.InitVersion{Version: "v9.9.9", StateSchema: 2, Arch: "amd64", Handover: 1}}
	return *f.staged, nil
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
