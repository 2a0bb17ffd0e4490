package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

func TestExitCode(t *testing.T) {
	plain := errors.New("unknown flag: --bogus") // as cobra returns it
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, ExitOK},
		{"unmarked", plain, ExitUsage},
		{"usage", Usagef("info takes one HOST, got %d", 2), ExitUsage},
		{"usage of an error", Usage(plain), ExitUsage},
		{"failure", Fail(fs.ErrNotExist), ExitFailure},
		{"failure wrapped", fmt.Errorf("cloud: %w", Fail(fs.ErrNotExist)), ExitFailure},
		{"usage through Fail", Fail(Usagef("--timeout 0s")), ExitUsage},
		{"usage wrapped in a failure", failure{Usage(plain)}, ExitUsage},
		{"Fail of nil", Fail(nil), ExitOK},
		{"Usage of nil", Usage(nil), ExitOK},
	}
	for _, tt := range tests {
		if got := ExitCode(tt.err); got != tt.want {
			t.Errorf("%s: ExitCode(%v) = %d, want %d", tt.name, tt.err, got, tt.want)
		}
	}
}

// The marks change neither the message nor what errors.Is finds.
func TestMarksKeepTheError(t *testing.T) {
	for _, err := range []error{Usage(fs.ErrNotExist), Fail(fs.ErrNotExist), Fail(Usage(fs.ErrNotExist))} {
		if got, want := err.Error(), fs.ErrNotExist.Error(); got != want {
			t.Errorf("%#v.Error() = %q, want %q", err, got, want)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("errors.Is(%#v, fs.ErrNotExist) = false, want true", err)
		}
	}
	if got, want := Usagef("--forward %q: want HOST:GUEST", "x").Error(), `--forward "x": want HOST:GUEST`; got != want {
		t.Errorf("Usagef(...).Error() = %q, want %q", got, want)
	}
}

func TestReport(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode int
		want     string
	}{
		{"nil", nil, ExitOK, ""},
		{"failure", Fail(errors.New("no alias \"web2\"")), ExitFailure, "cloud: no alias \"web2\"\n"},
		{"usage", Usagef("keys takes HOST"), ExitUsage, "cloud: keys takes HOST\nRun 'cloud keys --help' for usage.\n"},
	}
	for _, tt := range tests {
		var b strings.Builder
		code := Report(&b, "cloud", "cloud keys", tt.err)
		if code != tt.wantCode || b.String() != tt.want {
			t.Errorf("%s: Report(stderr, \"cloud\", \"cloud keys\", %v) = %d, printing %q; want %d, printing %q",
				tt.name, tt.err, code, b.String(), tt.wantCode, tt.want)
		}
	}
}
