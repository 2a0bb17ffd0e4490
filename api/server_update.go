package api

import "context"

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
