package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// The handlers of /v1/node/init (update.go): the upload of a new init
// is the images' resumable upload (server_upload.go) into the Updater,
// capped at MaxInitSize.

func (s *Server) initUpload() uploadTarget[InitInfo] {
	return uploadTarget[InitInfo]{
		what: "init",
		size: func(ctx context.Context, d string) (int64, error) {
			in, err := s.backend.Init(ctx, d)
			return in.Size, err
		},
		offset: s.backend.InitOffset,
		put:    s.backend.PutInit,
		max:    MaxInitSize,
	}
}

// switchInit serves POST /v1/node/update: 202 when the switch starts,
// 409 saying why it cannot.
func (s *Server) switchInit(w http.ResponseWriter, r *http.Request) {
	var req UpdateRequest
	d := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	d.DisallowUnknownFields()
	if err := d.Decode(&req); err != nil || req.Digest == "" {
		writeError(w, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf(`body: %v; want {"digest": "sha256:..."}, the staged init`, cmpErr(err, "no digest")))
		return
	}
	status, err := s.backend.SwitchInit(r.Context(), req.Digest)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Status != 0 {
			writeError(w, e.Status, e.Code, e.Message)
			return
		}
		writeError(w, http.StatusConflict, CodeConflict, err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, Accepted{Status: status})
}

func cmpErr(err error, otherwise string) string {
	if err != nil {
		return err.Error()
	}
	return otherwise
}
