// Package manifest is the native image format's contract: the schema
// of manifest.json (Manifest and its parts), its validation with errors
// that name the field (`manifest.json: restart.delay "5x": not a
// duration (e.g. "5s")`), container names (ValidName), signal names
// (ParseSignal), sizes and durations as written in JSON, and the
// archive layout rule (Layout: manifest.json first, then rootfs/).
//
// The client (cloud), the builder (mkimage pack) and the node
// (imagestore, supervisor, api) all read it, so it imports only the
// standard library and builds on every OS; a test in internal/deps
// keeps it so.
//
// It does not own reading archives or decompressing them (imagestore on
// the node, mholt/archives in cloud), nor what a manifest turns into on
// the node (supervisor.FromManifest).
package manifest
