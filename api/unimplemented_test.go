package api

import (
	"net/http"
	"testing"
)

func TestUnimplementedAppsAnswer501(t *testing.T) {
	n := startNode(t) // its fakeBackend embeds UnimplementedApps
	status, _, body := n.raw(t, http.MethodGet, "/v1/containers")
	if status != http.StatusNotImplemented {
		t.Errorf("GET /v1/containers on a node without apps: status %d, want 501", status)
	}
	wantJSONError(t, "GET /v1/containers without apps", body, CodeNotImplemented)
	_, _, err := n.dial(t, n.client).ImageState(t.Context(), zeroDigest)
	wantStatus(t, "ImageState() without apps", err, http.StatusNotImplemented, CodeNotImplemented)
}
