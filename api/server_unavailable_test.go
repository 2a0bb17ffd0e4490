package api

import (
	"errors"
	"testing"
)

// damaged is the node's state.CorruptError as the API sees it: an
// error that says it is Unavailable.
type damaged struct{}

func (damaged) Error() string     { return "state.db is damaged at containers/\"foo\": checksum mismatch" }
func (damaged) Unavailable() bool { return true }

// The issue-10 bug: a damaged state.db answered 500 on every call. An
// error that says the node is unavailable (state.db being recovered)
// is a 503 naming it, which a client may retry.
func TestUnavailableErrorIs503(t *testing.T) {
	n, apps := startApps(t)
	c := n.dial(t, n.client)
	apps.fail = damaged{}
	err := c.RemoveContainer(t.Context(), "foo")
	var e *Error
	if !errors.As(err, &e) || e.Status != 503 || e.Code != CodeUnavailable || e.Message != (damaged{}).Error() {
		t.Errorf("RemoveContainer with state.db damaged = %v, want a 503 naming the damage", err)
	}
}
