package qemutests

import "testing"

// These run in the unit tier: they check how the tier reads what the
// guest and dumpe2fs print, without booting anything.

func TestParseBareMarker(t *testing.T) {
	tests := []struct {
		serial  string
		want    sample
		ok, bad bool
	}{
		{serial: "[    2.9] Run /init as init process\n"},
		{serial: "BAREINIT_OK vmrss_kb=1604 used_k", ok: false}, // not all written yet
		{serial: "x\r\nBAREINIT_OK vmrss_kb=1604 used_kb=30840\r\n[ 3.1] reboot: Power down\n",
			want: sample{rss: 1604 << 10, used: 30840 << 10}, ok: true},
		{serial: "BAREINIT_OK vmrss_kb=? used_kb=1\n", bad: true},
	}
	for _, tt := range tests {
		got, ok, err := parseBareMarker(tt.serial)
		if got != tt.want || ok != tt.ok || (err != nil) != tt.bad {
			t.Errorf("parseBareMarker(%q) = %+v, %v, %v; want %+v, %v, error %v", tt.serial, got, ok, err, tt.want, tt.ok, tt.bad)
		}
	}
}

func TestDumpe2fsFields(t *testing.T) {
	out := "Filesystem volume name:   allium-data\n" +
		"Filesystem features:      has_journal ext_attr needs_recovery extent\n" +
		"Filesystem state:         clean\n" +
		"First orphan inode:       12\n"
	f := dumpe2fsFields(out)
	for k, want := range map[string]string{
		"Filesystem features": "has_journal ext_attr needs_recovery extent",
		"Filesystem state":    "clean",
		"First orphan inode":  "12",
	} {
		if f[k] != want {
			t.Errorf("dumpe2fsFields(...)[%q] = %q, want %q", k, f[k], want)
		}
	}
}

func TestMedian(t *testing.T) {
	s := []sample{{ready: 6, rss: 9, used: 2}, {ready: 2, rss: 7, used: 4}, {ready: 4, rss: 10, used: 8}, {ready: 20, rss: 1, used: 6}}
	if got, want := median(s), (sample{ready: 5, rss: 8, used: 5}); got != want {
		t.Errorf("median(%v) = %+v, want %+v", s, got, want)
	}
}
