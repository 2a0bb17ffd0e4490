package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestHeadImage(t *testing.T) {
	n, apps := startApps(t)
	c := n.dial(t, n.client)
	have, off, err := c.ImageState(t.Context(), zeroDigest)
	if err != nil || have || off != 0 {
		t.Errorf("ImageState(absent) = %v, %d, %v; want false, 0, nil", have, off, err)
	}
	apps.uploads[zeroDigest] = make([]byte, 1234)
	if have, off, err = c.ImageState(t.Context(), zeroDigest); have || off != 1234 || err != nil {
		t.Errorf("ImageState(partly uploaded) = %v, %d, %v; want false, 1234, nil", have, off, err)
	}
	apps.images[zeroDigest] = Image{Digest: zeroDigest, Size: 99}
	if have, _, err = c.ImageState(t.Context(), zeroDigest); !have || err != nil {
		t.Errorf("ImageState(present) = %v, %v; want true, nil", have, err)
	}
}

func TestUploadHeaders(t *testing.T) {
	n, apps := startApps(t)
	path := "/v1/images/" + zeroDigest
	tests := []struct {
		header []string
		want   string
	}{
		{[]string{HeaderUploadLength, "10"}, "Upload-Offset: missing"},
		{[]string{HeaderUploadOffset, "0"}, "Upload-Length: missing"},
		{[]string{HeaderUploadOffset, "x", HeaderUploadLength, "10"}, `Upload-Offset "x": want a byte count`},
		{[]string{HeaderUploadOffset, "-1", HeaderUploadLength, "10"}, `Upload-Offset "-1"`},
		{[]string{HeaderUploadOffset, "11", HeaderUploadLength, "10"}, "Upload-Offset 11 is past Upload-Length 10"},
		{[]string{HeaderUploadOffset, "0", HeaderUploadLength, "0"}, "Upload-Length: 0"},
		{[]string{HeaderUploadOffset, "8", HeaderUploadLength, "10"}, "Content-Length 5 is more than the 2 bytes"},
	}
	for _, tt := range tests {
		resp, body := n.send(t, n.request(t, http.MethodPut, path, []byte("12345"), tt.header...))
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(message(body), tt.want) {
			t.Errorf("PUT %s with %q: %d %s, want 400 saying %q", path, tt.header, resp.StatusCode, body, tt.want)
		}
	}
	if len(apps.puts) != 0 {
		t.Errorf("PutImage was called %d times for bad headers, want 0", len(apps.puts))
	}
}

func TestUploadOffsetMismatch(t *testing.T) {
	n, apps := startApps(t)
	apps.uploads[zeroDigest] = []byte("abc")
	req := n.request(t, http.MethodPut, "/v1/images/"+zeroDigest, []byte("xyz"),
		HeaderUploadOffset, "0", HeaderUploadLength, "10")
	resp, body := n.send(t, req)
	if resp.StatusCode != http.StatusConflict || resp.Header.Get(HeaderUploadOffset) != "3" {
		t.Fatalf("PUT at 0 when the node has 3: %d, Upload-Offset %q; want 409 and 3", resp.StatusCode, resp.Header.Get(HeaderUploadOffset))
	}
	var got struct {
		Error
		UploadState
	}
	if err := json.Unmarshal(body, &got); err != nil || got.Code != CodeUploadOffset || got.Offset != 3 || got.Digest != zeroDigest {
		t.Errorf("409 body = %s, want an error with code %q, digest and offset 3", body, CodeUploadOffset)
	}
	if string(apps.uploads[zeroDigest]) != "abc" {
		t.Errorf("a mismatched PUT changed the upload to %q", apps.uploads[zeroDigest])
	}
}

// TestUploadInPieces: a body shorter than the rest of the archive is
// kept, and the answer says where to go on.
func TestUploadInPieces(t *testing.T) {
	n, apps := startApps(t)
	data := archive(10)
	d := digestOf(data)
	path := "/v1/images/" + d
	resp, body := n.send(t, n.request(t, http.MethodPut, path, data[:4], HeaderUploadOffset, "0", HeaderUploadLength, "10"))
	var st UploadState
	if json.Unmarshal(body, &st); resp.StatusCode != http.StatusAccepted || st.Offset != 4 || resp.Header.Get(HeaderUploadOffset) != "4" {
		t.Fatalf("PUT of 4 of 10 bytes: %d %s, want 202 and offset 4", resp.StatusCode, body)
	}
	resp, body = n.send(t, n.request(t, http.MethodPut, path, data[4:], HeaderUploadOffset, "4", HeaderUploadLength, "10"))
	var img Image
	if json.Unmarshal(body, &img); resp.StatusCode != http.StatusCreated || img.Digest != d {
		t.Errorf("PUT of the other 6 bytes: %d %s, want 201 and the image", resp.StatusCode, body)
	}
	if !slices.Equal(apps.puts, []int64{0, 4}) {
		t.Errorf("PutImage offsets = %v, want [0 4]", apps.puts)
	}
}
