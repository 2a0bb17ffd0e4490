package manifest

import (
	"archive/tar"
	"strings"
	"testing"
)

func TestLayout(t *testing.T) {
	reg := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeReg} }
	type step struct {
		name string
		part Part
		rel  string
		err  string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"image", []step{{"./", Skip, "", ""}, {"manifest.json", ManifestPart, "", ""},
			{"rootfs/", RootfsPart, "", ""}, {"./rootfs/bin/sh", RootfsPart, "bin/sh", ""}, {"rootfs//a/./b/", RootfsPart, "a/b", ""}}},
		{"rootfs first", []step{{"rootfs/", 0, "", "comes before manifest.json"}}},
		{"other first", []step{{"README", 0, "", "not manifest.json nor under rootfs/"}}},
		{"other later", []step{{"manifest.json", ManifestPart, "", ""}, {"rootfsx/a", 0, "", "not manifest.json nor under rootfs/"}}},
		{"second manifest", []step{{"manifest.json", ManifestPart, "", ""}, {"./manifest.json", 0, "", "a second manifest.json"}}},
		{"dot-dot", []step{{"manifest.json", ManifestPart, "", ""}, {"rootfs/a/../../x", 0, "", "path escapes the image"}}},
		{"absolute", []step{{"/rootfs/a", 0, "", "path escapes the image"}}},
		{"nul", []step{{"manifest.json\x00", 0, "", "path escapes the image"}}},
	}
	for _, tt := range tests {
		var l Layout
		for _, s := range tt.steps {
			part, rel, err := l.Next(reg(s.name))
			switch {
			case s.err != "" && (err == nil || !strings.Contains(err.Error(), s.err)):
				t.Errorf("%s: Next(%q) = %v, want an error containing %q", tt.name, s.name, err, s.err)
			case s.err == "" && (err != nil || part != s.part || rel != s.rel):
				t.Errorf("%s: Next(%q) = %v, %q, %v; want %v, %q", tt.name, s.name, part, rel, err, s.part, s.rel)
			}
		}
	}
	var l Layout
	if part, _, err := l.Next(&tar.Header{Name: "pax_global_header", Typeflag: tar.TypeXGlobalHeader}); part != Skip || err != nil {
		t.Errorf("Next(pax global header) = %v, %v; want Skip", part, err)
	}
}

func TestParseSignal(t *testing.T) {
	for name, want := range map[string]int{"SIGTERM": 15, "term": 15, "KILL": 9, "sigusr1": 10, "PWR": 30} {
		if got, err := ParseSignal(name); got != want || err != nil {
			t.Errorf("ParseSignal(%q) = %d, %v; want %d", name, got, err, want)
		}
	}
	for _, name := range []string{"", "SIG", "SIGFOO", "15", "SIGSTOP"} {
		if got, err := ParseSignal(name); err == nil || !strings.Contains(err.Error(), "not a signal name") {
			t.Errorf("ParseSignal(%q) = %d, %v; want a refusal", name, got, err)
		}
	}
}

func TestResourcesRefused(t *testing.T) {
	for body, want := range map[string]string{
		`"resources": {"memory": 0}`:      "resources.memory 0: a limit of 0",
		`"resources": {"memory": "0M"}`:   `resources.memory "0M": a limit of 0`,
		`"resources": {"memory": "lots"}`: `resources.memory "lots": not a size`,
		`"resources": {"memory": "1K"}`:   "resources.memory 1024: too little",
		`"resources": {"pids": -1}`:       "resources.pids -1: negative",
	} {
		_, err := Parse(strings.NewReader(`{"version": 1, "name": "a", "command": ["/a"], ` + body + `}`))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%s) = %v, want an error containing %q", body, err, want)
		}
	}
}
