package api

import (
	"fmt"
	"regexp"
	"sync"
	"time"
)

// Wire types of images:
//
//	GET    /v1/images               []Image
//	GET    /v1/images/{digest}      Image
//	DELETE /v1/images/{digest}      204; 409 while a container uses it
//	HEAD   /v1/images/{digest}      where an upload stands (upload.go)
//	PUT    /v1/images/{digest}      a part of an upload (upload.go)

// Image is an unpacked image on the node.
type Image struct {
	// Digest is "sha256:" and the hex sha256 of the archive as pushed.
	Digest string `json:"digest"`
	// Name is the manifest's name.
	Name string `json:"name"`
	// Size is the archive's size in bytes.
	Size int64 `json:"size"`
	// Created is when the node finished unpacking it.
	Created time.Time `json:"created"`
	// UsedBy names the containers that run it.
	UsedBy []string `json:"used_by,omitempty"`
}

var digestRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^sha256:[0-9a-f]{64}$`) })

// ValidDigest reports whether d is "sha256:" and 64 lower-case hex digits.
func ValidDigest(d string) error {
	if !digestRE().MatchString(d) {
		return fmt.Errorf("%q: want sha256: and 64 lower-case hex digits", d)
	}
	return nil
}
