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
//	GET    /v1/uploads              []Upload: the partial uploads the node keeps
//	GET    /v1/images/{digest}      Image
//	DELETE /v1/images/{digest}      204 (the image, or a partial upload of it);
//	                                409 while a container uses it or it is uploading
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

// Upload is a partial upload the node keeps so that its client can
// resume: GET /v1/uploads. DELETE /v1/images/{digest} removes it.
type Upload struct {
	Digest string `json:"digest"`
	// Size is how many bytes the node has kept.
	Size int64 `json:"size"`
	// Length is the archive's declared length; 0 when unknown.
	Length int64 `json:"length,omitempty"`
	// Modified is when a byte was last written to it.
	Modified time.Time `json:"modified"`
	// Expires is when the node drops it unless it is written to again.
	Expires time.Time `json:"expires"`
	// Active is true while an upload of it is in flight.
	Active bool `json:"active,omitempty"`
}

var digestRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^sha256:[0-9a-f]{64}$`) })

// ValidDigest reports whether d is "sha256:" and 64 lower-case hex digits.
func ValidDigest(d string) error {
	if !digestRE().MatchString(d) {
		return fmt.Errorf("%q: want sha256: and 64 lower-case hex digits", d)
	}
	return nil
}
