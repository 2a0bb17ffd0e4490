package main

import (
	"archive/tar"
	"bytes"
	"context"
	"strings"
	"testing"

	"allium/imagestore"
)

// TestLayoutRuleIsShared runs one table of archives through cloud's
// check before an upload and the node's unpacking: both accept, or both
// refuse for the same reason.
//
// Regression: the client let 16 entries come before manifest.json and
// the node refused the same image after the whole upload.
func TestLayoutRuleIsShared(t *testing.T) {
	const good = `{"version": 1, "name": "app", "command": ["/bin/app"]}`
	mf := func() tar.Header { return tar.Header{Name: "manifest.json", Typeflag: tar.TypeReg} }
	dir := func(name string) tar.Header { return tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755} }
	file := func(name string) tar.Header { return tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644} }
	var many []tar.Header
	for i := range 16 {
		many = append(many, file("etc"+strings.Repeat("x", i)))
	}
	tests := []struct {
		name    string
		entries []tar.Header
		want    string // "" accepts; else both errors contain it
	}{
		{"manifest first", []tar.Header{mf(), dir("rootfs/"), file("rootfs/f")}, ""},
		{"top directory first", []tar.Header{dir("./"), mf(), dir("./rootfs/")}, ""},
		{"pax global header first", []tar.Header{{Name: "pax_global_header", Typeflag: tar.TypeXGlobalHeader,
			PAXRecords: map[string]string{"comment": "git"}}, mf(), dir("rootfs/")}, ""},
		{"manifest only", []tar.Header{mf()}, ""},
		{"rootfs before manifest", []tar.Header{dir("rootfs/"), mf()}, "comes before manifest.json"},
		{"a file before manifest", []tar.Header{file("README"), mf(), dir("rootfs/")}, "not manifest.json nor under rootfs/"},
		{"16 entries before manifest", append(many, mf(), dir("rootfs/")), "not manifest.json nor under rootfs/"},
		{"dot-dot first", []tar.Header{file("../evil"), mf()}, "path escapes the image"},
		{"absolute first", []tar.Header{file("/etc/passwd"), mf()}, "path escapes the image"},
		{"no manifest", []tar.Header{dir("./")}, "manifest.json"},
		{"manifest is a directory", []tar.Header{dir("manifest.json/")}, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			archive := layoutArchive(t, tt.entries, good)
			_, clientErr := readManifest(context.Background(), bytes.NewReader(archive))
			_, _, nodeErr := imagestore.Unpack(context.Background(), bytes.NewReader(archive), t.TempDir(),
				imagestore.DefaultLimits(1<<30))
			for side, err := range map[string]error{"cloud's check": clientErr, "the node's unpack": nodeErr} {
				switch {
				case tt.want == "" && err != nil:
					t.Errorf("%s = %v, want it accepted", side, err)
				case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
					t.Errorf("%s = %v, want an error containing %q", side, err, tt.want)
				}
			}
		})
	}
}

// layoutArchive writes a tar of entries; manifest.json gets body.
func layoutArchive(t *testing.T, entries []tar.Header, body string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		var data []byte
		if h.Name == "manifest.json" {
			data = []byte(body)
		}
		h.Size = int64(len(data))
		if h.Typeflag == tar.TypeXGlobalHeader {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %q: %v", h.Name, err)
		}
		tw.Write(data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
