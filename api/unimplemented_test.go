package api

import (
	"net/http"
	"strings"
	"testing"
)

func TestUnimplementedAppsAnswer501(t *testing.T) {
	n := startNode(t) // its fakeBackend embeds UnimplementedApps
	status, _, body := n.raw(t, http.MethodGet, "/v1/containers")
	if status != http.StatusNotImplemented {
		t.Errorf("GET /v1/containers on a node without apps: status %d, want 501", status)
	}
	wantJSONError(t, "GET /v1/containers without apps", body, CodeNotImplemented)
	const why = "images and containers are unavailable on this node"
	if !strings.Contains(message(body), why) {
		t.Errorf("GET /v1/containers without apps: %q, want it to say %q", message(body), why)
	}
	_, _, err := n.dial(t, n.client).ImageState(t.Context(), zeroDigest)
	e := wantStatus(t, "ImageState() without apps", err, http.StatusNotImplemented, CodeNotImplemented)
	if !strings.Contains(e.Message, why) {
		t.Errorf("ImageState() without apps = %q, want it to say %q", e.Message, why)
	}
}

func TestUnimplementedKeysAnswer501(t *testing.T) {
	n := startNode(t) // its fakeBackend embeds UnimplementedKeys
	_, err := n.dial(t, n.client).Keys(t.Context())
	wantStatus(t, "Keys() without a KeyStore", err, http.StatusNotImplemented, CodeNotImplemented)
	if !strings.Contains(err.Error(), "does not manage keys") {
		t.Errorf("Keys() without a KeyStore = %v, want it to say the node does not manage keys", err)
	}
}
