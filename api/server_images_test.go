package api

import (
	"net/http"
	"strings"
	"testing"
)

func TestImagesEmptyListIsArray(t *testing.T) {
	n, _ := startApps(t)
	for _, path := range []string{"/v1/images", "/v1/containers"} {
		status, header, body := n.raw(t, http.MethodGet, path)
		if status != http.StatusOK || strings.TrimSpace(string(body)) != "[]" || header.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s on an empty node: %d %q %s, want 200 application/json []", path, status, header.Get("Content-Type"), body)
		}
	}
}

func TestBadDigestAndName(t *testing.T) {
	n, apps := startApps(t)
	tests := []struct{ method, path, field string }{
		{http.MethodGet, "/v1/images/sha256:xyz", `digest "sha256:xyz"`},
		{http.MethodDelete, "/v1/images/md5:00", `digest "md5:00"`},
		{http.MethodPut, "/v1/images/sha256:ABC", `digest "sha256:ABC"`},
		{http.MethodGet, "/v1/containers/Foo", `container name "Foo"`},
		{http.MethodPost, "/v1/containers/-x/stop", `container name "-x"`},
		{http.MethodGet, "/v1/containers/a%20b/logs", `container name "a b"`},
	}
	for _, tt := range tests {
		resp, body := n.send(t, n.request(t, tt.method, tt.path, nil))
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(message(body), tt.field) {
			t.Errorf("%s %s: %d %s, want 400 naming %s", tt.method, tt.path, resp.StatusCode, body, tt.field)
		}
		wantJSONError(t, tt.method+" "+tt.path, body, CodeBadRequest)
	}
	if len(apps.puts) != 0 {
		t.Errorf("a bad request reached PutImage")
	}
}

func TestImageEndpoints(t *testing.T) {
	n, apps := startApps(t)
	c := n.dial(t, n.client)
	apps.images[zeroDigest] = Image{Digest: zeroDigest, Name: "app", Size: 7}
	if img, err := c.Image(t.Context(), zeroDigest); err != nil || img.Size != 7 {
		t.Errorf("Image() = %+v, %v; want size 7", img, err)
	}
	if imgs, err := c.Images(t.Context()); err != nil || len(imgs) != 1 {
		t.Errorf("Images() = %+v, %v; want one", imgs, err)
	}
	if err := c.RemoveImage(t.Context(), zeroDigest); err != nil {
		t.Errorf("RemoveImage() = %v", err)
	}
	err := c.RemoveImage(t.Context(), zeroDigest)
	wantStatus(t, "RemoveImage() again", err, http.StatusNotFound, CodeNotFound)
}
