// Package imagestore receives images: the manifest schema and its
// validation, streaming and resumable uploads with sha256 digests, safe
// unpacking (in the `init unpack` helper process), the content-addressed
// store of unpacked images, and garbage collection.
//
// It knows nothing of the supervisor, HTTP or bbolt: callers hand it
// readers and directories and get back digests, manifests and paths.
package imagestore
