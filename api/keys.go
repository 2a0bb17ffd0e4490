package api

import (
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"time"
)

// Wire types of the authorized client keys. A client is one entry
// holding both of its keys, so removing it locks it out of TLS (every
// listener) and of the onion's client authorization at once:
//
//	GET    /v1/keys       []KeyInfo; "you" marks the caller's own key
//	POST   /v1/keys       KeyRequest: 201 + KeyInfo when added; 200 + KeyInfo
//	                      when the same key with the same fields is there
//	                      already (a retry); 409 "conflict" when the key, the
//	                      name or the onion key belongs to another entry;
//	                      400 naming the bad field
//	DELETE /v1/keys/{id}  id: a name, a fingerprint (SHA256:...) or the key
//	                      (ed25519:..., path-escaped). 200 + the removed
//	                      KeyInfo; 404; 409 "last_admin" when it is the
//	                      only admin key
//
// A viewer key may only read (GET and HEAD, logs and events included);
// anything else answers 403 "forbidden".

// Roles of KeyInfo.Role and KeyRequest.Role.
const (
	// RoleAdmin may do everything.
	RoleAdmin = "admin"
	// RoleViewer may read (GET and HEAD) and nothing else.
	RoleViewer = "viewer"
)

// Error codes of the keys endpoints and of the role check.
const (
	CodeForbidden = "forbidden"
	CodeLastAdmin = "last_admin"
)

// KeyInfo is an authorized client as GET /v1/keys shows it.
type KeyInfo struct {
	Name string `json:"name"`
	// Key is the TLS key, "ed25519:BASE64".
	Key string `json:"key"`
	// OnionKey is the x25519 key of tor's client authorization,
	// "x25519:BASE32"; "" for a client that only uses TCP.
	OnionKey    string `json:"onion_key,omitempty"`
	Fingerprint string `json:"fingerprint"`
	// Role is RoleAdmin or RoleViewer.
	Role string `json:"role"`
	// Added is when the key was added; zero for a key baked into the
	// image before the node recorded that.
	Added time.Time `json:"added,omitzero"`
	// You is true for the key the request came with.
	You bool `json:"you,omitempty"`
}

// KeyRequest is the body of POST /v1/keys.
type KeyRequest struct {
	Name string `json:"name"`
	// Key is the client's TLS key, "ed25519:BASE64".
	Key string `json:"key"`
	// OnionKey is its x25519 key, "x25519:BASE32", or "" for a client
	// that only uses TCP.
	OnionKey string `json:"onion_key,omitempty"`
	// Role is RoleAdmin or RoleViewer; "" means RoleAdmin.
	Role string `json:"role,omitempty"`
}

// ClientKey is an authorized client as a Backend keeps it.
type ClientKey struct {
	AuthorizedKey
	// Role is RoleAdmin or RoleViewer; "" means RoleAdmin.
	Role string
	// Added is when it was added; zero when not recorded.
	Added time.Time
}

var keyNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,62}$`) })

// ValidKeyName reports whether name can name a client key. Names hold
// no ':' so that they never read as a fingerprint or a key.
func ValidKeyName(name string) error {
	if !keyNameRE().MatchString(name) {
		return fmt.Errorf("name %q: use 1-63 letters, digits, '.', '_', '@', '+' or '-', starting with a letter or digit", name)
	}
	return nil
}

// ValidRole reports whether role is one a key can have ("" is admin).
func ValidRole(role string) error {
	if role != "" && role != RoleAdmin && role != RoleViewer {
		return fmt.Errorf("role %q: want %s or %s", role, RoleAdmin, RoleViewer)
	}
	return nil
}

// Parse checks r and returns the key it asks for, with Role set; a
// bad field is a BadRequest error naming it.
func (r KeyRequest) Parse() (ClientKey, error) {
	if err := ValidKeyName(r.Name); err != nil {
		return ClientKey{}, BadRequest("%v", err)
	}
	if r.Key == "" {
		return ClientKey{}, BadRequest("key: missing; want the client's TLS key, \"ed25519:BASE64\"")
	}
	pub, err := ParseKey(r.Key)
	if err != nil {
		return ClientKey{}, BadRequest("%v", err)
	}
	k := ClientKey{AuthorizedKey: AuthorizedKey{Key: pub, Name: r.Name}, Role: r.Role}
	if r.OnionKey != "" {
		if k.Onion, err = ParseOnionKey(r.OnionKey); err != nil {
			return ClientKey{}, BadRequest("%v", err)
		}
	}
	if err := ValidRole(r.Role); err != nil {
		return ClientKey{}, BadRequest("%v", err)
	}
	if k.Role == "" {
		k.Role = RoleAdmin
	}
	return k, nil
}

// Info is k as the wire shows it.
func (k ClientKey) Info() KeyInfo {
	info := KeyInfo{Name: k.Name, Key: FormatKey(k.Key), Fingerprint: fingerprintOf(k.Key), Role: k.Role, Added: k.Added}
	if k.Onion != nil {
		info.OnionKey = FormatOnionKey(k.Onion)
	}
	if info.Role == "" {
		info.Role = RoleAdmin
	}
	return info
}

// Matches reports whether id names k: its name, its fingerprint, or
// its key as FormatKey writes it.
func (k ClientKey) Matches(id string) bool {
	if id == k.Name || id == fingerprintOf(k.Key) {
		return true
	}
	pub, err := ParseKey(id)
	return err == nil && pub.Equal(k.Key)
}

// IsAdmin reports whether k has the admin role.
func (k ClientKey) IsAdmin() bool { return k.Role == "" || k.Role == RoleAdmin }

// LastAdmin is an error that answers 409 "last_admin": the removal
// would leave no admin key.
func LastAdmin(format string, args ...any) *Error {
	return newError(http.StatusConflict, CodeLastAdmin, fmt.Errorf(format, args...))
}

// Forbidden is an error that answers 403: the caller's role may not do
// this.
func Forbidden(format string, args ...any) *Error {
	return newError(http.StatusForbidden, CodeForbidden, fmt.Errorf(format, args...))
}
